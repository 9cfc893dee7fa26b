"""Property-based fuzzing of every HTTP operation against the app's own OpenAPI schema.

For each operation schemathesis generates requests that fit the schema (positive) and that
break it (negative), sends them in-process to the app with its lifespan running (PostgreSQL,
Redis, every background task) and the all-scopes key, and checks that no answer is a 5xx,
that every status is one the operation declares, and that every body matches its declared
schema (the error envelope included). Bounded and derandomised: the same cases every run, a
few seconds per operation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from app.settings import Settings
from tests.conftest import PG_ADMIN_URL, REDIS_URL, RUN_ID, _pg_url
from tests.support.databases import clone_database, drop_database
from tests.support.trading import ADMIN, add_accounts

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
MAX_EXAMPLES = 25
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)

# Problems found here in code owned elsewhere, reported and expected to be fixed there.
KNOWN: dict[tuple[str, str], str] = {}


def operations() -> list[Any]:
    """(method, path) of every operation, read from the schema when the module is collected."""
    app = create_app(Settings(environment="development"))
    paths = app.openapi()["paths"]
    found = []
    for path, methods in sorted(paths.items()):
        for method in sorted(methods):
            marks = []
            reason = KNOWN.get((method.upper(), path))
            if reason is not None:
                marks.append(pytest.mark.xfail(strict=False, reason=reason))
            found.append(pytest.param(method.upper(), path, marks=marks, id=f"{method} {path}"))
    return found


@pytest.fixture(scope="module")
def fuzzed_app(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """One app and one database for the module; each test runs the lifespan anew (the
    schemathesis plugin ends it after every test), so state carries over as in production."""
    name = f"ticker_test_{RUN_ID}_fuzz_{uuid.uuid4().hex[:8]}"
    clone_database(PG_ADMIN_URL, pg_template, name)
    prefix = f"test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    tokens = workdir / "tokens"
    tokens.mkdir()
    add_accounts(tokens)
    settings = Settings(
        environment="development",
        db={"url": _pg_url(name), "data_dir": workdir / "data"},
        redis={"url": REDIS_URL, "prefix": prefix},
        auth={
            "api_key": ADMIN["X-API-Key"],
            "tokens_dir": tokens,
            "rate_limit": 1e6,
            "unauthenticated_rate_limit": 1e6,
        },
        log={"format": "text", "level": "INFO"},
    )
    try:
        yield create_app(settings)
    finally:
        asgi.shutdown_lifespans()
        drop_database(PG_ADMIN_URL, name)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture(scope="module")
def schema(fuzzed_app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


def fuzz(operation: Any, mode: schemathesis.GenerationMode) -> None:
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode, headers=dict(ADMIN)))
    def run(case: schemathesis.Case) -> None:
        case.validate_response(case.call(), checks=CHECKS)

    run()


class TestSchemathesis:
    @pytest.mark.parametrize(("method", "path"), operations())
    def test_operation(self, schema: Any, method: str, path: str) -> None:
        operation = schema[path][method]
        for mode in MODES:
            try:
                fuzz(operation, mode)
            except Unsatisfiable:
                # Nothing to negate (no parameters, or only strings in the path).
                assert mode is schemathesis.GenerationMode.NEGATIVE
