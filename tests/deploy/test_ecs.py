"""ecs/: the task and service definitions are valid input of ECS's RegisterTaskDefinition and
CreateService (botocore's own API model: member names, types, required fields, enums) and
follow the deployment's rules (Fargate, non-root, read-only root, secrets from Secrets
Manager, awslogs, a working health check, one owner per order book)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.validate import ParamValidator

from tests.deploy.support import ROOT, SHUTDOWN_GRACE_SECONDS, assert_healthcheck_probes_liveness

ECS = ROOT / "ecs"
TASKS = sorted(ECS.glob("task-definition*.json"))
SERVICES = sorted(ECS.glob("service*.json"))
SECRET_NAMES = {"DATABASE_URL", "REDIS_URL", "API_KEY"}
# arn:aws:secretsmanager:region:account:secret:name[:json-key:version-stage:version-id]
SECRET_ARN = re.compile(
    r"arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+(?::(?P<key>\w*):\w*:\w*)?"
)
# Fargate's CPU units and the memory (MiB) each allows.
FARGATE_MEMORY = {
    "256": {"512", "1024", "2048"},
    "512": {str(m) for m in range(1024, 4097, 1024)},
    "1024": {str(m) for m in range(2048, 8193, 1024)},
    "2048": {str(m) for m in range(4096, 16385, 1024)},
    "4096": {str(m) for m in range(8192, 30721, 1024)},
}


def input_shape(operation: str) -> StructureShape:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model(operation).input_shape
    assert isinstance(shape, StructureShape)
    return shape


def enum_problems(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Values outside an enum of the model (ParamValidator checks types, not enums)."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        return [
            problem
            for name, item in value.items()
            if name in shape.members
            for problem in enum_problems(item, shape.members[name], f"{path}.{name}")
        ]
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [
            p for i, v in enumerate(value) for p in enum_problems(v, shape.member, f"{path}[{i}]")
        ]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return [p for k, v in value.items() for p in enum_problems(v, shape.value, f"{path}.{k}")]
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        return [f"{path}: {value!r} is not one of {enum}"]
    return []


def assert_valid(path: Path, operation: str) -> dict[str, Any]:
    # The files are `--cli-input-json` documents: their keys already are the API's member
    # names (camelCase), so they go to the validator unchanged.
    params: dict[str, Any] = json.loads(path.read_text())
    shape = input_shape(operation)
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"{path.name}:\n{report.generate_report()}"
    assert enum_problems(params, shape) == []
    return params


def task(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    definition = json.loads(path.read_text())
    (container,) = definition["containerDefinitions"]
    return definition, container


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["environment"]}


class TestSchemas:
    @pytest.mark.parametrize("path", TASKS, ids=lambda p: p.name)
    def test_task_definition_is_valid_register_task_definition_input(self, path: Path) -> None:
        assert_valid(path, "RegisterTaskDefinition")

    @pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
    def test_service_is_valid_create_service_input(self, path: Path) -> None:
        assert_valid(path, "CreateService")

    def test_validation_catches_a_misspelt_member_and_a_bad_enum(self) -> None:
        params = json.loads(TASKS[0].read_text())
        params["containerDefinitions"][0]["readOnlyRootFilesystem"] = True
        shape = input_shape("RegisterTaskDefinition")
        assert ParamValidator().validate(params, shape).has_errors()
        params = json.loads(TASKS[0].read_text())
        params["networkMode"] = "vpc"
        (problem,) = enum_problems(params, shape)
        assert problem.startswith(".networkMode: 'vpc' is not one of")


class TestTaskDefinitions:
    @pytest.mark.parametrize("path", TASKS, ids=lambda p: p.name)
    def test_runs_on_fargate_locked_down(self, path: Path) -> None:
        definition, container = task(path)
        assert definition["requiresCompatibilities"] == ["FARGATE"]
        assert definition["networkMode"] == "awsvpc"
        assert definition["memory"] in FARGATE_MEMORY[definition["cpu"]]
        assert definition["memory"] == "2048"  # alerts.yaml HighMemoryUsage assumes 2 GiB
        assert container["user"] == "1000"
        assert container["readonlyRootFilesystem"] is True
        assert container["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
        (mount,) = container["mountPoints"]
        assert mount["containerPath"] == "/tmp"
        assert mount["sourceVolume"] in {v["name"] for v in definition["volumes"]}
        assert not container["image"].endswith(":latest")

    @pytest.mark.parametrize("path", TASKS, ids=lambda p: p.name)
    def test_secrets_come_from_secrets_manager(self, path: Path) -> None:
        _definition, container = task(path)
        secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
        assert {"DATABASE_URL", "REDIS_URL"} <= set(secrets)
        for value in secrets.values():
            assert SECRET_ARN.fullmatch(value), value
        # The JSON-key form picks one field of a JSON secret.
        keys = {match["key"] for v in secrets.values() if (match := SECRET_ARN.fullmatch(v))}
        assert {"DATABASE_URL", "REDIS_URL"} <= keys
        assert not SECRET_NAMES & set(env_of(container)), "a secret in plain environment"

    @pytest.mark.parametrize("path", TASKS, ids=lambda p: p.name)
    def test_logs_and_stops_gracefully(self, path: Path) -> None:
        _definition, container = task(path)
        logging = container["logConfiguration"]
        assert logging["logDriver"] == "awslogs"
        assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(
            logging["options"]
        )
        grace = float(env_of(container)["SHUTDOWN_GRACE_SECONDS"])
        assert grace == SHUTDOWN_GRACE_SECONDS
        assert grace + 5 <= container["stopTimeout"] <= 120  # Fargate's maximum
        assert env_of(container)["ENVIRONMENT"] == "production"

    def test_health_check_probes_liveness(self) -> None:
        commands = {tuple(task(path)[1]["healthCheck"]["command"]) for path in TASKS}
        for command in commands:
            assert command[0] == "CMD"
            assert_healthcheck_probes_liveness(list(command[1:]))

    def test_gateways_and_matchers_agree_on_the_shard_count(self) -> None:
        environments = [env_of(task(path)[1]) for path in TASKS]
        sharded = [env for env in environments if env["ROLE"] != "all"]
        assert {env["ROLE"] for env in sharded} == {"gateway", "matcher"}
        (shards,) = {int(env["MATCHER_SHARDS"]) for env in sharded}
        for env in sharded:
            if env["ROLE"] == "matcher":
                assert 0 <= int(env["SHARD_ID"]) < shards


class TestServices:
    @pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
    def test_runs_a_task_definition_of_this_folder(self, path: Path) -> None:
        service = json.loads(path.read_text())
        families = {task(p)[0]["family"]: task(p)[1] for p in TASKS}
        container = families[service["taskDefinition"]]
        deployment = service["deploymentConfiguration"]
        assert deployment["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == (
            "DISABLED"
        )
        if env_of(container)["ROLE"] in {"all", "matcher"}:
            # A book's owner: stop the old task before the new one starts, never two.
            assert service["desiredCount"] == 1
            assert deployment["maximumPercent"] == 100
            assert deployment["minimumHealthyPercent"] == 0
        else:
            assert deployment["minimumHealthyPercent"] == 100
        for balancer in service.get("loadBalancers", []):
            assert balancer["containerName"] == container["name"]
            ports = {p["containerPort"] for p in container["portMappings"]}
            assert balancer["containerPort"] in ports
