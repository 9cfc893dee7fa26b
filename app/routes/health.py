"""Open routes: health and probes (no API key; listed in ``app.routes.OPEN_PATHS``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import HealthDep
from app.routes.responses import OrjsonResponse, error_body

router = APIRouter(tags=["health"])


@router.get("/health", summary="Detailed health of the service and its dependencies")
async def get_health(health: HealthDep) -> OrjsonResponse:
    report = await health.report()
    return OrjsonResponse(report, status_code=503 if report["status"] == "down" else 200)


@router.get("/health/live", summary="Liveness probe: the process answers")
async def get_live() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/health/ready", summary="Readiness probe: registry loaded, books rebuilt, DB up")
async def get_ready(health: HealthDep) -> OrjsonResponse:
    ready, checks = await health.readiness()
    if ready:
        return OrjsonResponse({"status": "ready", "checks": checks})
    waiting = ", ".join(name for name, value in checks.items() if value != "ok")
    return OrjsonResponse(
        error_body("NOT_READY", f"not ready: {waiting}", checks=checks), status_code=503
    )
