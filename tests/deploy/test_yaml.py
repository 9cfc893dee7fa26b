"""yamllint (config: .yamllint) over every deployment YAML file."""

from __future__ import annotations

from tests.deploy.support import ROOT, assert_ok, run

YAML_FILES = ["docker-compose.prod.yml", "alerts.yaml", "alerts.test.yaml", ".yamllint", "k8s"]


class TestYamllint:
    def test_deployment_yaml_is_clean(self) -> None:
        for name in YAML_FILES:
            assert (ROOT / name).exists(), name
        assert_ok(run("yamllint", "--strict", "--config-file", ".yamllint", *YAML_FILES))

    def test_yamllint_reports_a_problem(self) -> None:
        result = run(
            "yamllint", "--strict", "--config-file", ".yamllint", "-", stdin="a: 1\na: 2\n"
        )
        assert result.returncode != 0
        assert "duplication of key" in result.stdout
