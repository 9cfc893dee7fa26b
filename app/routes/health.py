"""Open routes: health and probes (no API key; listed in ``app.routes.OPEN_PATHS``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import HealthDep
from app.routes.models import HealthOut, LiveOut, ReadyOut
from app.routes.responses import ErrorEnvelope, OrjsonResponse, error_body

router = APIRouter(tags=["health"])

NOT_READY = error_body(
    "NOT_READY",
    "not ready: order_books",
    checks={"database": "ok", "instrument_registry": "ok", "order_books": "waiting"},
)


@router.get(
    "/health",
    summary="Detailed health of the service and its dependencies",
    response_model=None,
    responses={
        200: {"model": HealthOut, "description": "ok or degraded"},
        503: {"model": HealthOut, "description": "down: the database does not answer"},
    },
)
async def get_health(health: HealthDep) -> OrjsonResponse:
    report = await health.report()
    return OrjsonResponse(report, status_code=503 if report["status"] == "down" else 200)


@router.get(
    "/health/live",
    summary="Liveness probe: the process answers",
    response_model=None,
    responses={200: {"model": LiveOut}},
)
async def get_live() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness probe: registry loaded, books rebuilt, DB up",
    response_model=None,
    responses={
        200: {"model": ReadyOut, "description": "ready to serve"},
        503: {
            "model": ErrorEnvelope,
            "description": "NOT_READY; checks names what it waits for",
            "content": {"application/json": {"example": NOT_READY}},
        },
    },
)
async def get_ready(health: HealthDep) -> OrjsonResponse:
    ready, checks = await health.readiness()
    if ready:
        return OrjsonResponse({"status": "ready", "checks": checks})
    waiting = ", ".join(name for name, value in checks.items() if value != "ok")
    return OrjsonResponse(
        error_body("NOT_READY", f"not ready: {waiting}", checks=checks), status_code=503
    )
