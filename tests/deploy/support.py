"""Helpers of the deployment checks: run a validator, load YAML, render a kustomization.

The validators are real programs (promtool, hadolint, kubernetes-validate, check-jsonschema,
yamllint), called through subprocess as CI would call them. Those that pip installs live
next to the test interpreter; promtool comes from ``scripts/ensure-tools.sh``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SHUTDOWN_GRACE_SECONDS = 15  # the default of Settings.shutdown_grace_seconds, set in manifests


def tool(name: str) -> str:
    """The path of a validator: the virtualenv's own first, then PATH. Missing is a failure
    with the way to fix it, never a skip: CI must not pass without validating."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(
            f"{name} is not installed: run `make tools` (promtool) or "
            "`pip install -e '.[dev]'` (the Python validators)"
        )
    return found


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a validator in the repository root; the result, with output, for asserting on."""
    return subprocess.run(
        [tool(args[0]), *args[1:]],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# The subset of kustomize the overlays use. Anything else in a kustomization.yaml fails the
# fallback loudly instead of rendering something different from kubectl.
KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "images"}


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization like ``kubectl kustomize`` does for ``resources`` and
    ``images``: used when kubectl is not installed, and compared with it when it is."""
    spec = load_yaml(directory / "kustomization.yaml")
    unknown = set(spec) - KUSTOMIZE_KEYS
    if unknown:
        raise AssertionError(f"{directory}: the fallback renderer does not support {unknown}")
    documents: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        documents += kustomize(path) if path.is_dir() else load_all(path)
    for image in spec.get("images", []):
        replacement = image.get("newName", image["name"])
        if "newTag" in image:
            replacement += f":{image['newTag']}"
        for container in containers(documents):
            if container["image"].split(":")[0].split("@")[0] == image["name"]:
                container["image"] = replacement
    return documents


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    if document["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        spec: dict[str, Any] = document["spec"]["template"]["spec"]
        return spec
    return None


def containers(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for document in documents:
        spec = pod_spec(document)
        if spec is not None:
            found += spec.get("initContainers", []) + spec["containers"]
    return found


@contextmanager
def health_server(status: int) -> Iterator[int]:
    """A stand-in service answering ``/health/live`` with ``status``; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health/live" else 404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_healthcheck(argv: list[str], port: int) -> int:
    """Run a container health check command (exec form, ``python -c ...``) on this machine
    against ``port`` instead of 8000; its exit code (0 healthy)."""
    assert argv[0] == "python", argv
    command = [sys.executable, *(arg.replace("8000", str(port)) for arg in argv[1:])]
    env = {**os.environ, "PORT": str(port)}
    return subprocess.run(command, env=env, capture_output=True, timeout=30, check=False).returncode


def assert_healthcheck_probes_liveness(argv: list[str]) -> None:
    with health_server(200) as port:
        assert run_healthcheck(argv, port) == 0
    with health_server(503) as port:
        assert run_healthcheck(argv, port) != 0
    assert run_healthcheck(argv, unused_port()) != 0
