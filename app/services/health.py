"""Health: real checks of the database and Redis, plus whatever components register.

Status rules: ``down`` (HTTP 503) when the database, which journals every order, does not
answer; ``degraded`` when Redis does not answer or a component reports a non-ok status;
``ok`` otherwise. Readiness additionally waits for every registered readiness gate (registry
loaded, books rebuilt).
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Awaitable, Callable
from typing import Any

from app.metrics import Metrics
from app.store.database import Database
from app.store.redis import RedisStore

ComponentProbe = Callable[[], dict[str, Any]]
ReadinessGate = Callable[[], bool]
GateDetail = Callable[[], str]

OK, DEGRADED, DOWN = "ok", "degraded", "down"


class HealthService:
    def __init__(
        self,
        *,
        database: Database,
        redis: RedisStore,
        metrics: Metrics,
        environment: str,
        version: str,
        timeout: float,
    ) -> None:
        self._database = database
        self._redis = redis
        self._metrics = metrics
        self._environment = environment
        self._version = version
        self._timeout = timeout
        self._components: dict[str, ComponentProbe] = {}
        self._sections: dict[str, ComponentProbe] = {}
        self._gates: dict[str, tuple[ReadinessGate, GateDetail | None]] = {}
        metrics.build_info.labels(
            version=version,
            environment=environment,
            database=database.dialect,
            python=platform.python_version(),
        ).set(1)

    def add_dependency(self, name: str, probe: ComponentProbe) -> None:
        """A component under ``dependencies``; its ``status`` other than ok degrades health."""
        self._components[name] = probe

    def add_section(self, name: str, probe: ComponentProbe) -> None:
        """A top-level section such as ``ticker``; informational."""
        self._sections[name] = probe

    def add_readiness_gate(
        self, name: str, gate: ReadinessGate, *, detail: GateDetail | None = None
    ) -> None:
        """``detail`` says what a closed gate waits for (else the check reads "waiting")."""
        self._gates[name] = (gate, detail)

    async def watch(self, interval: float) -> None:
        """Check the dependencies every ``interval`` seconds, so ``ticker_dependency_up`` (and
        the alerts on it) stay current even when nobody calls ``/health``."""
        while True:
            await self.dependency_checks()
            await asyncio.sleep(interval)

    async def _check(self, name: str, probe: Callable[[float], Awaitable[None]]) -> str:
        try:
            await probe(self._timeout)
        except Exception as exc:  # any failure of a dependency is a health fact, not a crash
            self._metrics.dependency_up.labels(dependency=name).set(0)
            return f"error: {type(exc).__name__}" if str(exc) == "" else f"error: {_short(exc)}"
        self._metrics.dependency_up.labels(dependency=name).set(1)
        return OK

    async def dependency_checks(self) -> dict[str, str]:
        database, redis = await asyncio.gather(
            self._check("database", self._database.ping),
            self._check("redis", self._redis.ping),
        )
        return {"database": database, "redis": redis}

    async def report(self) -> dict[str, Any]:
        checks = await self.dependency_checks()
        dependencies: dict[str, Any] = dict(checks)
        status = OK
        if checks["database"] != OK:
            status = DOWN
        elif checks["redis"] != OK:
            status = DEGRADED
        for name, probe in self._components.items():
            component = probe()
            dependencies[name] = component
            if component.get("status") != OK and status == OK:
                status = DEGRADED
        report: dict[str, Any] = {
            "status": status,
            "environment": self._environment,
            "version": self._version,
        }
        for name, probe in self._sections.items():
            report[name] = probe()
        report["dependencies"] = dependencies
        return report

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {"database": await self._check("database", self._database.ping)}
        for name, (gate, detail) in self._gates.items():
            checks[name] = OK if gate() else (detail() if detail is not None else "waiting")
        return all(value == OK for value in checks.values()), checks


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
