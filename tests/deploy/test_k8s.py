"""k8s/: every overlay renders (kubectl kustomize, or the fallback renderer) and passes
``kubernetes-validate --strict``; the workloads follow the rules of the deployment (probes,
restricted security context, key files mounted for rotation, one owner per book)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    ROOT,
    assert_ok,
    containers,
    kustomize,
    load_all,
    load_yaml,
    pod_spec,
    run,
)

K8S = ROOT / "k8s"
OVERLAYS = sorted(path.parent.name for path in (K8S / "overlays").glob("*/kustomization.yaml"))
# The oldest release the manifests support (pod-index label: 1.28+) and a recent one.
K8S_VERSIONS = ("1.30.0", "1.33.0")
# Created by the operator (README, "Deploy"), never committed.
SECRETS = {"ticker-secrets", "ticker-api-keys"}
WORKLOADS = {"Deployment", "StatefulSet"}


def kubectl_render(overlay: str) -> list[dict[str, Any]] | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def render(overlay: str) -> list[dict[str, Any]]:
    """What ``kubectl apply -k`` would send: kubectl's rendering, else the fallback's."""
    documents = kubectl_render(overlay)
    return documents if documents is not None else kustomize(K8S / "overlays" / overlay)


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def rendered(overlay: str) -> list[dict[str, Any]]:
    return render(overlay)


def named(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def workloads(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] in WORKLOADS]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def config(documents: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = named(documents, "ConfigMap")["ticker-config"]["data"]
    return data


class TestValidation:
    def test_overlays_pass_strict_schema_validation(
        self, overlay: str, rendered: list[dict[str, Any]], tmp_path: Path
    ) -> None:
        out = tmp_path / f"{overlay}.yaml"
        out.write_text(yaml.safe_dump_all(rendered))
        for version in K8S_VERSIONS:
            assert_ok(run("kubernetes-validate", "--strict", "--quiet", "-k", version, str(out)))

    def test_every_manifest_file_passes_strict_schema_validation(self) -> None:
        files = [
            str(p)
            for p in sorted(K8S.rglob("*.yaml"))
            if p.name != "kustomization.yaml" and "examples" not in p.parts
        ]
        assert len(files) >= 10
        assert_ok(run("kubernetes-validate", "--strict", "--quiet", "-k", K8S_VERSIONS[0], *files))

    def test_validation_catches_a_misspelt_field(self, tmp_path: Path) -> None:
        deployment = load_yaml(K8S / "overlays/single/deployment.yaml")
        deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump(deployment))
        result = run("kubernetes-validate", "--strict", "--quiet", "-k", K8S_VERSIONS[0], str(bad))
        assert result.returncode != 0
        assert "readOnlyRootFileSystem" in result.stdout + result.stderr

    def test_fallback_renderer_matches_kubectl(self, overlay: str) -> None:
        from_kubectl = kubectl_render(overlay)
        if from_kubectl is None:
            pytest.skip("kubectl is not installed; the fallback renderer is in use")

        def key(d: dict[str, Any]) -> str:
            return f"{d['kind']}/{d['metadata']['name']}"

        ours = kustomize(K8S / "overlays" / overlay)
        assert sorted(ours, key=key) == sorted(from_kubectl, key=key)

    def test_every_manifest_belongs_to_a_kustomization(self) -> None:
        listed: set[Path] = set()
        for kustomization in K8S.rglob("kustomization.yaml"):
            for entry in load_yaml(kustomization).get("resources", []):
                listed.add((kustomization.parent / entry).resolve())
        files = {
            p.resolve()
            for p in K8S.rglob("*.yaml")
            if p.name != "kustomization.yaml" and "examples" not in p.parts
        }
        assert files - listed == set()


class TestWorkloads:
    def test_containers_are_probed_on_the_health_routes(
        self, rendered: list[dict[str, Any]]
    ) -> None:
        for container in containers(rendered):
            assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"

    def test_pods_run_non_root_read_only_without_capabilities(
        self, rendered: list[dict[str, Any]]
    ) -> None:
        for workload in workloads(rendered):
            spec = pod_spec(workload)
            assert spec is not None
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] is True
            assert pod["runAsUser"] == 1000
            assert pod["seccompProfile"]["type"] == "RuntimeDefault"
            assert spec["automountServiceAccountToken"] is False
            for container in spec["containers"]:
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True
                assert security["allowPrivilegeEscalation"] is False
                assert security["capabilities"]["drop"] == ["ALL"]

    def test_only_tmp_is_writable(self, rendered: list[dict[str, Any]]) -> None:
        for workload in workloads(rendered):
            spec = pod_spec(workload)
            assert spec is not None
            volumes = {v["name"]: v for v in spec["volumes"]}
            for container in spec["containers"]:
                writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
                assert [m["mountPath"] for m in writable] == ["/tmp"]
                assert "emptyDir" in volumes[writable[0]["name"]]

    def test_key_files_are_mounted_as_a_folder_so_keys_rotate(
        self, rendered: list[dict[str, Any]]
    ) -> None:
        tokens_dir = config(rendered)["TOKENS_DIR"]
        for workload in workloads(rendered):
            spec = pod_spec(workload)
            assert spec is not None
            volumes = {v["name"]: v for v in spec["volumes"]}
            for container in spec["containers"]:
                (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == tokens_dir]
                # A subPath mount would never see an updated Secret.
                assert mount["readOnly"] is True
                assert "subPath" not in mount
                assert volumes[mount["name"]]["secret"]["secretName"] == "ticker-api-keys"

    def test_grace_period_covers_pre_stop_and_shutdown_grace(
        self, rendered: list[dict[str, Any]]
    ) -> None:
        grace = float(config(rendered)["SHUTDOWN_GRACE_SECONDS"])
        for workload in workloads(rendered):
            spec = pod_spec(workload)
            assert spec is not None
            for container in spec["containers"]:
                pre_stop = container.get("lifecycle", {}).get("preStop", {})
                pause = float(pre_stop["exec"]["command"][1]) if pre_stop else 0.0
                # and a few seconds for the final journal flush
                assert spec["terminationGracePeriodSeconds"] >= pause + grace + 5

    def test_resources_are_requested_and_memory_limited(
        self, rendered: list[dict[str, Any]]
    ) -> None:
        for container in containers(rendered):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"])
            assert resources["limits"]["memory"] == "2Gi"  # alerts.yaml HighMemoryUsage

    def test_every_reference_resolves(self, rendered: list[dict[str, Any]]) -> None:
        config_maps = named(rendered, "ConfigMap")
        accounts = named(rendered, "ServiceAccount")
        assert named(rendered, "Secret") == {}, "secret values must not be committed"
        for workload in workloads(rendered):
            spec = pod_spec(workload)
            assert spec is not None
            assert spec["serviceAccountName"] in accounts
            for container in spec["containers"]:
                for source in container["envFrom"]:
                    assert source["configMapRef"]["name"] in config_maps
                for value in env_of(container).values():
                    if isinstance(value, dict) and "secretKeyRef" in value:
                        assert value["secretKeyRef"]["name"] in SECRETS
            for volume in spec["volumes"]:
                if "secret" in volume:
                    assert volume["secret"]["secretName"] in SECRETS

    def test_selectors_match_pods(self, rendered: list[dict[str, Any]]) -> None:
        pods = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(rendered)]
        for workload in workloads(rendered):
            selector = workload["spec"]["selector"]["matchLabels"]
            assert selects(selector, workload["spec"]["template"]["metadata"]["labels"])
        for service in named(rendered, "Service").values():
            assert any(selects(service["spec"]["selector"], labels) for labels in pods)
        for budget in named(rendered, "PodDisruptionBudget").values():
            assert any(selects(budget["spec"]["selector"]["matchLabels"], p) for p in pods)
        (policy,) = named(rendered, "NetworkPolicy").values()
        assert all(selects(policy["spec"]["podSelector"]["matchLabels"], p) for p in pods)

    def test_every_workload_names_its_role(self, rendered: list[dict[str, Any]]) -> None:
        for container in containers(rendered):
            assert env_of(container)["ROLE"] in {"all", "gateway", "matcher"}
            assert container["image"].startswith("ticker-service:")


class TestSingle:
    def test_one_process_owns_the_books(self) -> None:
        (deployment,) = workloads(render("single"))
        assert deployment["kind"] == "Deployment"
        # Never two owners of a book, not even during an update.
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert env_of(container)["ROLE"] == "all"
        assert named(render("single"), "HorizontalPodAutoscaler") == {}


class TestSharded:
    def test_only_gateways_autoscale(self) -> None:
        documents = render("sharded")
        (hpa,) = named(documents, "HorizontalPodAutoscaler").values()
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        gateway = named(documents, target["kind"])[target["name"]]
        (container,) = gateway["spec"]["template"]["spec"]["containers"]
        assert target["kind"] == "Deployment"
        assert env_of(container)["ROLE"] == "gateway"
        assert "replicas" not in gateway["spec"], "the autoscaler owns the gateway count"
        assert hpa["spec"]["minReplicas"] >= 2

    def test_one_matcher_per_shard_with_its_ordinal_as_shard_id(self) -> None:
        documents = render("sharded")
        (matchers,) = named(documents, "StatefulSet").values()
        shards = int(named(documents, "ConfigMap")["ticker-cluster"]["data"]["MATCHER_SHARDS"])
        assert matchers["spec"]["replicas"] == shards
        (container,) = matchers["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert env["ROLE"] == "matcher"
        assert env["SHARD_ID"] == {
            "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
        }
        headless = named(documents, "Service")[matchers["spec"]["serviceName"]]
        assert headless["spec"]["clusterIP"] == "None"

    def test_gateways_and_matchers_agree_on_the_shard_count(self) -> None:
        for workload in workloads(render("sharded")):
            (container,) = workload["spec"]["template"]["spec"]["containers"]
            sources = {s["configMapRef"]["name"] for s in container["envFrom"]}
            assert "ticker-cluster" in sources
            assert "MATCHER_SHARDS" not in env_of(container)


class TestSecretExamples:
    def test_external_secrets_create_the_secrets_the_pods_use(self) -> None:
        documents = load_all(K8S / "examples" / "external-secrets.yaml")
        targets = {d["spec"]["target"]["name"] for d in documents if d["kind"] == "ExternalSecret"}
        assert targets == SECRETS
        stores = {d["metadata"]["name"] for d in documents if d["kind"] == "SecretStore"}
        for document in documents:
            if document["kind"] == "ExternalSecret":
                assert document["spec"]["secretStoreRef"]["name"] in stores

    def test_no_secret_values_are_committed(self) -> None:
        for path in K8S.rglob("*.yaml"):
            for document in load_all(path):
                assert document.get("kind") != "Secret", path
