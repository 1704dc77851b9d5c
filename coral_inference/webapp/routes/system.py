"""/api/v1/system, /api/v1/workflows, /api/v1/auth: runtime description, plugins, workflow files, sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from coral_inference.webapp.auth import SESSION_COOKIE, AuthPolicy
from coral_inference.webapp.deps import auth_policy, pipeline_service
from coral_inference.webapp.schemas import SessionOpened, SessionRequest, WorkflowFile
from coral_inference.webapp.services import PipelineService

router = APIRouter()


@router.get(
    "/system/info", tags=["system"], summary="Platform, inference, backends, patches and plugins"
)
async def system_info(request: Request) -> dict[str, Any]:
    description = request.app.state.services.context.describe()
    description["web"] = {
        "auth": {
            "mode": request.app.state.auth.mode,
            "reads_need_key": request.app.state.auth.reads_need_key,
            "header": request.app.state.auth.header,
        },
        "ui": request.app.state.ui_mode,
        "tasks": request.app.state.services.task_states(),
    }
    return description


@router.get("/system/plugins", tags=["system"], summary="Web plugins and whether they are mounted")
async def web_plugins(request: Request) -> list[dict[str, Any]]:
    return [plugin.as_dict() for plugin in request.app.state.web_plugins]


@router.get(
    "/workflows",
    response_model=list[WorkflowFile],
    tags=["pipelines"],
    summary="Workflow files under services.pipelines.workflows_root",
)
async def list_workflows(
    service: PipelineService = Depends(pipeline_service),
) -> list[dict[str, Any]]:
    return service.list_workflows()


session_router = APIRouter(prefix="/auth", tags=["auth"])


@session_router.post(
    "/session", response_model=SessionOpened, summary="Trade an API key for a session cookie"
)
async def open_session(
    body: SessionRequest,
    response: Response,
    request: Request,
    auth: AuthPolicy = Depends(auth_policy),
) -> dict[str, Any]:
    """For what the browser fetches by itself (``<video src>``): the cookie is HttpOnly and SameSite=Strict."""
    token = auth.open_session(
        body.api_key, client=request.client.host if request.client else "unknown"
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        max_age=int(auth.session_ttl_s),
        secure=request.url.scheme == "https",
        path="/",
    )
    return {"ok": True, "cookie": SESSION_COOKIE}


@session_router.delete("/session", status_code=204, summary="Forget the session cookie")
async def close_session(request: Request, auth: AuthPolicy = Depends(auth_policy)) -> Response:
    auth.close_session(request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
