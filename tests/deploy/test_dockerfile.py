"""Dockerfile and .dockerignore: hadolint, and the rules no linter knows (slim Python base,
non-root, exec-form start, a working health check, nothing secret in the image).

No Docker engine runs on the CI machines, so the image is not built here; what can be
checked without one is checked: the health check command itself runs against a stand-in.
"""

from __future__ import annotations

import json
import re

from tests.deploy.support import ROOT, assert_healthcheck_probes_liveness, assert_ok, run

SECRET_WORDS = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|DATABASE_URL|REDIS_URL", re.IGNORECASE)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            parsed.append((keyword.upper(), arguments.strip()))
    return parsed


def final_stage() -> list[tuple[str, str]]:
    parsed = instructions()
    start = max(i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM")
    return parsed[start:]


def args_of(keyword: str) -> list[str]:
    return [arguments for k, arguments in final_stage() if k == keyword]


class TestDockerfile:
    def test_hadolint_passes(self) -> None:
        assert_ok(run("hadolint", "--failure-threshold", "info", "Dockerfile"))

    def test_is_multi_stage_on_slim_python_3_11(self) -> None:
        parsed = instructions()
        (base,) = [a for k, a in parsed if k == "ARG" and a.startswith("PYTHON_IMAGE=")]
        assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", base)
        stages = [arguments for keyword, arguments in parsed if keyword == "FROM"]
        assert len(stages) >= 2
        assert all(stage.startswith("${PYTHON_IMAGE}") for stage in stages)
        # The runtime stage takes the built virtualenv, not the build tools.
        assert any(a.startswith("--from=build") for a in args_of("COPY"))
        assert not any("gcc" in a for a in args_of("RUN"))

    def test_runs_as_uid_1000(self) -> None:
        assert args_of("USER") == ["1000:1000"]

    def test_starts_in_exec_form(self) -> None:
        # JSON arrays: the Python process is PID 1 and receives SIGTERM, no shell between.
        (entrypoint,) = args_of("ENTRYPOINT")
        (cmd,) = args_of("CMD")
        assert json.loads(entrypoint) == ["ticker-service"]
        assert json.loads(cmd) == ["serve"]
        assert args_of("STOPSIGNAL") == ["SIGTERM"]

    def test_defaults_to_production_on_all_interfaces(self) -> None:
        env = " ".join(args_of("ENV"))
        assert "ENVIRONMENT=production" in env
        assert "HOST=0.0.0.0" in env
        assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only

    def test_bakes_in_no_secret(self) -> None:
        for keyword, arguments in instructions():
            if keyword in {"ENV", "ARG"}:
                for name in re.findall(r"(\w+)=", arguments):
                    assert not SECRET_WORDS.search(name), f"{keyword} {name}"

    def test_healthcheck_probes_liveness_without_curl(self) -> None:
        (healthcheck,) = args_of("HEALTHCHECK")
        options, _, command = healthcheck.partition("CMD ")
        assert "--interval=" in options
        argv = json.loads(command)
        assert "/health/live" in argv[-1]
        assert_healthcheck_probes_liveness(argv)


class TestDockerignore:
    def test_allow_lists_only_what_the_build_copies(self) -> None:
        rules = [
            line.strip()
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        # Everything is excluded first, so tokens/, data/, .env and .git never reach a build.
        assert rules[0] == "*"
        allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
        assert allowed == {"pyproject.toml", "README.md", "app"}
        copied = {
            source.rstrip("/")
            for arguments in (a for k, a in instructions() if k == "COPY")
            if not arguments.startswith("--from")
            for source in arguments.split()[:-1]
        }
        assert copied <= allowed
