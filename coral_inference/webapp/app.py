"""``create_web_app(config, context) -> FastAPI``: the control plane, built by a factory.

Nothing happens at import. The factory wires services, routers, auth, CORS,
the body-size limit, error rendering, web plugins and the UI; the lifespan
starts and stops every background task (and, when the factory initialised the
runtime itself, shuts it down again).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from coral_inference.config.errors import validation_problems
from coral_inference.pipelines.sources_policy import SourcePolicy
from coral_inference.redaction import install_log_redaction
from coral_inference.runtime import init, shutdown
from coral_inference.webapp.auth import AuthPolicy
from coral_inference.webapp.deps import api_key_guard
from coral_inference.webapp.errors import ApiError, internal_error_body
from coral_inference.webapp.middleware import (
    REQUEST_ID_HEADER,
    ControlPlaneGuard,
    HostPolicy,
    log_internal_error,
)
from coral_inference.webapp.plugins import build_web_plugins
from coral_inference.webapp.routes import health, monitor, pipelines, streams, system
from coral_inference.webapp.schemas import ErrorBody
from coral_inference.webapp.services import WebServices

if TYPE_CHECKING:
    from coral_inference.runtime.context import RuntimeContext

logger = logging.getLogger("coral_inference.webapp")

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "too_many_requests",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 404, 409, 413, 422)
}


def create_web_app(
    config: Any = None, context: RuntimeContext | None = None, **service_overrides: Any
) -> FastAPI:
    """The control plane for ``context`` (or for a runtime initialised here from ``config``).

    ``service_overrides`` replace parts of the services in tests (``hub``,
    ``metrics_hub``, ``downloader``, ``runner_factory``).
    """

    install_log_redaction()  # source URLs with user:pass reach httpx's and our logs; the records are cleaned
    owns_context = context is None
    if context is None:
        context = init(config, source="coral web app")
    cfg = context.config.services
    services = WebServices(context, **service_overrides)
    auth = AuthPolicy.from_config(cfg.auth, cfg.http.host)
    plugins = build_web_plugins(context.web_plugins, context)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await services.start()
        try:
            yield
        finally:
            await services.stop()
            if owns_context:
                shutdown()

    app = FastAPI(
        title="Coral control plane",
        version=_version(),
        description="Pipelines, live preview, recordings, metrics and health of a Coral edge box.",
        lifespan=lifespan,
        openapi_tags=[
            {"name": "pipelines", "description": "Workflows running on video sources."},
            {"name": "streams", "description": "Live WebRTC preview and snapshots."},
            {"name": "recordings", "description": "Recorded video under storage.recordings."},
            {"name": "monitoring", "description": "Host and pipeline metrics, disk cleanup."},
            {"name": "health", "description": "Probes and Prometheus metrics."},
            {"name": "system", "description": "The runtime and its plugins."},
            {"name": "auth", "description": "Sessions for browsers."},
        ],
    )
    app.state.services = services
    app.state.auth = auth
    app.state.web_plugins = plugins
    app.state.ui_mode = cfg.ui.mode
    app.state.generated_api_key = auth.generated_key
    app.state.source_policy = SourcePolicy.from_config(cfg.pipelines)

    guard = [Depends(api_key_guard(auth.header))]
    api = APIRouter(prefix=API_PREFIX, dependencies=guard, responses=ERRORS)
    for router in (pipelines.router, streams.router, monitor.router, system.router):
        api.include_router(router)
    app.include_router(api)
    app.include_router(system.session_router, prefix=API_PREFIX, responses=ERRORS)
    app.include_router(health.router)
    app.include_router(health.metrics_router, dependencies=guard, responses=ERRORS)
    _mount_plugins(app, plugins, guard)
    _install_errors(app)
    _mount_ui(app, cfg.ui, plugins)
    if cfg.http.cors_origins:
        origins = list(cfg.http.cors_origins)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials="*" not in origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=cfg.http.max_body_bytes)
    # Outermost of the user middleware: a refused Host or Origin never reaches CORS, limits or routes.
    app.add_middleware(
        ControlPlaneGuard,
        hosts=HostPolicy(list(cfg.http.allowed_hosts), cfg.http.host),
        auth=auth,
        cors_origins=list(cfg.http.cors_origins),
    )
    return app


def _mount_plugins(app: FastAPI, plugins: list[Any], guard: list[Any]) -> None:
    for plugin in plugins:
        spec = plugin.spec
        if spec is None:
            continue
        for router in spec.routers:
            app.include_router(
                router, prefix=spec.mount_prefix, dependencies=guard, tags=[f"plugin:{spec.name}"]
            )
        if spec.static_dir is not None:
            app.mount(
                f"{spec.mount_prefix}/static",
                StaticFiles(directory=spec.static_dir),
                name=f"plugin-{spec.name}-static",
            )


def _mount_ui(app: FastAPI, ui: Any, plugins: list[Any]) -> None:
    if ui.mode == "default":
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")

        @app.get("/", include_in_schema=False)
        async def dashboard() -> FileResponse:
            return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

        return
    if ui.mode == "plugin":
        match = next((p for p in plugins if p.name == ui.plugin), None)
        if match is not None and match.spec is not None and match.spec.ui_dir is not None:
            app.mount("/", StaticFiles(directory=match.spec.ui_dir, html=True), name="plugin-ui")
            return
        reason = (
            f"web plugin {ui.plugin!r} is not installed"
            if match is None
            else match.error or f"web plugin {ui.plugin!r} has no ui_dir"
        )
        logger.error("services.ui.mode=plugin: %s; serving no UI", reason)
        app.state.ui_mode = f"none ({reason})"

    @app.get("/", include_in_schema=False)
    async def no_ui() -> dict[str, str]:
        return {
            "name": "Coral control plane",
            "api": API_PREFIX,
            "docs": "/docs",
            "ui": app.state.ui_mode,
        }


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = None
        if exc.status == 429 and isinstance(exc.details, dict) and "retry_after_s" in exc.details:
            headers = {"Retry-After": str(int(exc.details["retry_after_s"]) + 1)}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = validation_problems(
            exc.errors(), unknown_hint="see /docs for the request schema", show_input=False
        )
        details = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        return JSONResponse(
            {
                "code": "invalid_request",
                "message": "; ".join(problems) or "invalid request",
                "details": details,
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"code": HTTP_CODES.get(exc.status_code, "http_error"), "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The client learns that it failed and under which id; paths, types and values stay in the log.
        request_id = getattr(request.state, "request_id", None) or "unknown"
        log_internal_error(request_id, request.method, request.url.path, exc)
        return JSONResponse(
            internal_error_body(request_id),
            status_code=500,
            headers={REQUEST_ID_HEADER: request_id},
        )


class BodySizeLimit:
    """Refuses request bodies over ``services.http.max_body_bytes`` with 413, declared or streamed."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                await self._refuse(send)
                return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> dict:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app says about a body it could not read, the answer is 413
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        response = JSONResponse(
            {
                "code": "payload_too_large",
                "message": f"request body over {self.max_bytes} bytes (services.http.max_body_bytes)",
            },
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


def _version() -> str:

    try:
        return version("coral-inference")
    except PackageNotFoundError:
        return "0+unknown"
