"""Coral's routes on the inference server's HTTP app (mounted by ``coral-runtime server start``).

* ``GET /coral/metrics`` — the Prometheus series of every stream-manager pipeline
  (:mod:`coral_inference.server.metrics_export`), one scrape for the whole server.
* ``POST /inference_pipelines/initialise`` with a workflow that uses Coral, while the
  Coral config is broken: answered here with the config problems (file, dotted
  path, fix) instead of the stream manager's generic failure.
* The live preview routes of :mod:`coral_inference.server.preview`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from coral_inference.config.loader import ConfigError
from coral_inference.server.metrics_export import EXPORT_DIR_ENV, scrape
from coral_inference.server.plugin import configuration_error, load_server_config
from coral_inference.server.preview import add_preview_routes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INITIALISE_PATHS = ("/inference_pipelines/initialise",)


def uses_coral(value: Any) -> bool:
    """Whether a workflow definition (or any JSON value) names a Coral block or a ``coral/`` id."""
    if isinstance(value, str):
        return value.startswith("coral/")
    if isinstance(value, dict):
        return any(uses_coral(v) for v in value.values())
    if isinstance(value, list):
        return any(uses_coral(v) for v in value)
    return False


class CoralConfigGate:
    """ASGI middleware: while the config is bad, a Coral pipeline is refused with its problems."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in INITIALISE_PATHS
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        problem = self._problem(body)
        if problem is not None:
            payload = json.dumps(
                {"message": problem, "error_type": "CoralConfigurationError"}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _problem(body: bytes) -> str | None:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return None
        if not uses_coral(
            request.get("processing_configuration") if isinstance(request, dict) else None
        ):
            return None

        try:
            load_server_config()
        except ConfigError as exc:
            return str(getattr(configuration_error(exc), "public_message", exc))
        return None


def mount_coral_routes(app: Any) -> None:
    """Add Coral's routes in front of the server's catch-all static mount, and the config gate."""

    from fastapi.responses import Response  # heavy: FastAPI/starlette (~0.5 s)

    def coral_metrics() -> Response:
        directory = Path(os.environ.get(EXPORT_DIR_ENV, ""))
        body = scrape(directory) if str(directory) not in ("", ".") else b""
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    before = len(app.router.routes)
    app.add_api_route(
        "/coral/metrics",
        coral_metrics,
        methods=["GET"],
        tags=["coral"],
        summary="Prometheus series of every Coral pipeline of this server",
    )
    add_preview_routes(app)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added  # the server mounts "/" (its landing page) last: go first
    app.add_middleware(CoralConfigGate)
