"""docker-compose.prod.yml: valid against the Compose specification (check-jsonschema's
vendored schema), and production-shaped: health checks, volumes, log rotation, limits,
secrets only from the host environment, one owner per order book in each profile."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.support import (
    ROOT,
    SHUTDOWN_GRACE_SECONDS,
    assert_healthcheck_probes_liveness,
    assert_ok,
    load_yaml,
    run,
)

COMPOSE = ROOT / "docker-compose.prod.yml"
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "API_KEY")


def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = load_yaml(COMPOSE)["services"]
    return loaded


def ticker_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if "ROLE" in s.get("environment", {})}


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


class TestCompose:
    def test_passes_the_compose_spec_schema(self) -> None:
        assert_ok(run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)))

    @pytest.mark.parametrize("name", sorted(services()))
    def test_service_is_production_shaped(self, name: str) -> None:
        service = services()[name]
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"]
        logging = service["logging"]
        assert logging["driver"] == "json-file"
        assert {"max-size", "max-file"} <= set(logging["options"])
        assert service["deploy"]["resources"]["limits"]["memory"]

    def test_stores_keep_their_data_in_volumes(self) -> None:
        declared = set(load_yaml(COMPOSE)["volumes"])
        for name in ("timescaledb", "redis"):
            (volume,) = services()[name]["volumes"]
            assert volume.split(":")[0] in declared

    def test_images_are_timescaledb_on_postgresql_15_plus_and_redis_7(self) -> None:
        match = re.fullmatch(
            r"timescale/timescaledb:[\d.]+-pg(\d+)", services()["timescaledb"]["image"]
        )
        assert match
        assert int(match[1]) >= 15
        assert services()["redis"]["image"].startswith("redis:7")

    def test_secrets_come_from_the_host_and_are_required(self) -> None:
        text = COMPOSE.read_text()
        for name in SECRETS:
            uses = re.findall(r"\$\{" + name + r"(.{0,2})", text)
            assert uses, name
            assert all(use == ":?" for use in uses), f"{name} must be ${{{name}:?...}}"

    @pytest.mark.parametrize("name", sorted(ticker_services()))
    def test_service_runs_locked_down(self, name: str) -> None:
        service = ticker_services()[name]
        assert service["user"] == "1000:1000"
        assert service["read_only"] is True
        assert [t.split(":")[0] for t in service["tmpfs"]] == ["/tmp"]
        assert service["cap_drop"] == ["ALL"]
        assert "./tokens:/app/tokens:ro" in service["volumes"]
        assert service["environment"]["ENVIRONMENT"] == "production"
        assert {dep["condition"] for dep in service["depends_on"].values()} == {"service_healthy"}
        assert set(service["depends_on"]) == {"timescaledb", "redis"}
        grace = float(service["environment"]["SHUTDOWN_GRACE_SECONDS"])
        assert grace == SHUTDOWN_GRACE_SECONDS
        assert seconds(service["stop_grace_period"]) >= grace + 5

    def test_healthcheck_probes_liveness(self) -> None:
        commands = {tuple(s["healthcheck"]["test"]) for s in ticker_services().values()}
        for test in commands:
            assert test[0] == "CMD"
            assert_healthcheck_probes_liveness(list(test[1:]))

    def test_profiles_never_run_two_owners_of_a_book(self) -> None:
        by_profile: dict[str, list[dict[str, str]]] = {}
        for service in ticker_services().values():
            (profile,) = service["profiles"]
            by_profile.setdefault(profile, []).append(service["environment"])
        assert [env["ROLE"] for env in by_profile["single"]] == ["all"]
        sharded = by_profile["sharded"]
        assert "all" not in {env["ROLE"] for env in sharded}
        shards = {int(env["MATCHER_SHARDS"]) for env in sharded}
        assert len(shards) == 1, "gateways and matchers must agree on MATCHER_SHARDS"
        matcher_ids = sorted(int(env["SHARD_ID"]) for env in sharded if env["ROLE"] == "matcher")
        assert matcher_ids == list(range(shards.pop()))
        for name in ("timescaledb", "redis"):
            assert "profiles" not in services()[name]
