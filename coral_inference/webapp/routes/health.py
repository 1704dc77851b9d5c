"""/healthz, /readyz, /metrics: probes for containers and scrapers (not versioned)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from coral_inference.webapp.auth import SESSION_COOKIE
from coral_inference.webapp.deps import health_service
from coral_inference.webapp.schemas import Liveness, Readiness
from coral_inference.webapp.services import HealthService

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process answers")
async def healthz(health: HealthService = Depends(health_service)) -> dict[str, Any]:
    return health.live()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: every configured check passes",
    responses={503: {"model": Readiness, "description": "A check failed; 'failing' names it"}},
)
async def readyz(request: Request, health: HealthService = Depends(health_service)) -> JSONResponse:
    """Open to probes; where reads need a key, only key holders see which check fails and why."""
    ready, body = await health.ready()
    auth = request.app.state.auth
    if auth.reads_need_key and not auth.is_key_holder(
        request.headers.get(auth.header), request.cookies.get(SESSION_COOKIE)
    ):
        body = {"status": body["status"], "failing": [], "checks": {}}
    return JSONResponse(body, status_code=200 if ready else 503)


metrics_router = APIRouter(tags=["health"])


@metrics_router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus exposition",
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(health: HealthService = Depends(health_service)) -> Response:
    body, content_type = health.metrics()
    return Response(body, media_type=content_type)
