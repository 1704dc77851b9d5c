"""FastAPI dependencies: the services of the running app and the API-key guard."""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader

from coral_inference.webapp.auth import SESSION_COOKIE, AuthPolicy
from coral_inference.webapp.services import (
    HealthService,
    MonitorService,
    PipelineService,
    StreamService,
    WebServices,
)


def services(request: Request) -> WebServices:
    return request.app.state.services


def pipeline_service(request: Request) -> PipelineService:
    return request.app.state.services.pipelines


def stream_service(request: Request) -> StreamService:
    return request.app.state.services.streams


def monitor_service(request: Request) -> MonitorService:
    return request.app.state.services.monitor


def health_service(request: Request) -> HealthService:
    return request.app.state.services.health


def auth_policy(request: Request) -> AuthPolicy:
    return request.app.state.auth


def api_key_guard(header_name: str):
    """The dependency that enforces ``AuthPolicy`` (and documents the scheme in OpenAPI)."""
    header = APIKeyHeader(
        name=header_name,
        auto_error=False,
        description="An API key (see coral-runtime web hash-key).",
    )
    cookie = APIKeyCookie(
        name=SESSION_COOKIE,
        auto_error=False,
        description="Session from POST /api/v1/auth/session (for <video> and <img>).",
    )

    async def require_api_key(
        request: Request,
        key: str | None = Security(header),
        session: str | None = Security(cookie),
    ) -> None:
        client = request.client.host if request.client else "unknown"
        request.app.state.auth.check(request.method, request.url.path, key, session, client=client)

    return require_api_key
