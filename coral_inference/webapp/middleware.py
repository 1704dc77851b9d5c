"""The control plane's outer guard: request ids, ``Host`` and ``Origin`` checks, docs behind keys.

One ASGI layer in front of every route, the UI and the plugins:

* every response carries ``X-Request-ID`` (the client's, when it sent a sane one; else a new one),
  and the id is what a 500 shows instead of the error (the log has the rest);
* ``Host`` must be an IP address, a loopback name, this machine's name or one of
  ``services.http.allowed_hosts`` — a page that rebinds its own DNS name to 127.0.0.1 is refused;
* a redirect's ``Location`` never carries the ``Host`` the client sent, only a path;
* a mutating request that names an ``Origin`` must come from this server's own origin or from
  ``services.http.cors_origins`` (``SameSite`` ignores ports, so a page on another port of the same
  host would otherwise ride the session cookie);
* when reads need a key (``AuthPolicy.reads_need_key``), ``/docs``, ``/redoc`` and
  ``/openapi.json`` need it too.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import JSONResponse

from coral_inference.webapp.auth import SESSION_COOKIE, AuthPolicy, is_loopback
from coral_inference.webapp.errors import ApiError, internal_error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("coral_inference.webapp")

REQUEST_ID_HEADER = "X-Request-ID"
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "coral_request_id", default=None
)


def current_request_id() -> str | None:
    """The id of the request being served in this task (None outside a request)."""
    return request_id_var.get()


def host_name(header: str) -> str:
    """The name in a ``Host`` header without port, brackets, case or trailing dot.

    >>> host_name("[::1]:9100"), host_name("Coral.LAN.:80"), host_name("10.0.0.2")
    ('::1', 'coral.lan', '10.0.0.2')
    """
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` names this server answers to.

    IP literals always pass: DNS rebinding needs a name the attacker controls, and a page served
    from this box's own address is this box. Names pass when they are loopback names, this
    machine's hostname (and ``<hostname>.local``) or listed in ``services.http.allowed_hosts``.
    """

    def __init__(self, allowed: list[str], bound_host: str = "127.0.0.1"):
        self.any = "*" in allowed
        names = {name.lower().rstrip(".") for name in allowed if name != "*"}
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))
        self.names = {name for name in names if not name.startswith("*.")}
        self.names.add(host_name(bound_host))
        machine = socket.gethostname().lower()
        if machine:
            self.names |= {machine, f"{machine}.local"}

    def allows(self, header: str | None) -> bool:
        if self.any or header is None:  # no Host header: HTTP/1.0 tools, never a browser
            return True
        name = host_name(header)
        if not name:
            return False
        if _is_ip(name) or is_loopback(name) or name.endswith(".localhost") or name in self.names:
            return True
        return any(name.endswith(suffix) for suffix in self.suffixes)


class ControlPlaneGuard:
    """The ASGI middleware described in the module docstring; wraps the whole app."""

    def __init__(
        self, app: ASGIApp, *, hosts: HostPolicy, auth: AuthPolicy, cors_origins: list[str]
    ):
        self.app = app
        self.hosts = hosts
        self.auth = auth
        self.cors_origins = {origin.rstrip("/").lower() for origin in cors_origins if origin != "*"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self.hosts.allows(_headers(scope).get("host")):
            await send(
                {"type": "websocket.close", "code": 1008}
            )  # policy violation: a rebound name
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host", "")
        sent_id = headers.get("x-request-id", "")
        request_id = sent_id if _CLIENT_ID.match(sent_id) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        try:
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                await _render(refusal, request_id, send)
                return

            started = False

            async def send_with_id(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    message["headers"] = _response_headers(
                        message.get("headers") or [], request_id, host
                    )
                await send(message)

            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if started:
                    raise
                # Answered here, not by Starlette's outermost handler, which re-raises and makes
                # uvicorn drop the keep-alive connection the client will reuse.
                log_internal_error(
                    request_id, scope.get("method", "?"), scope.get("path", "?"), exc
                )
                response = JSONResponse(
                    internal_error_body(request_id),
                    status_code=500,
                    headers={REQUEST_ID_HEADER: request_id},
                )
                await response(scope, _no_receive, send)
        finally:
            request_id_var.reset(token)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> ApiError | None:
        host = headers.get("host")
        if not self.hosts.allows(host):
            return ApiError(
                f"this server does not answer to the host name {host_name(host or '')!r}; "
                "add it to services.http.allowed_hosts if it is this box's name",
                code="host_not_allowed",
                status=421,
            )
        method = scope.get("method", "GET")
        origin = headers.get("origin")
        if (
            method not in SAFE_METHODS
            and origin is not None
            and not self._same_or_allowed(origin, host)
        ):
            return ApiError(
                f"a request from the page at {origin!r} may not change this server "
                "(only its own pages, or services.http.cors_origins, may)",
                code="cross_origin_refused",
                status=403,
            )
        path = scope.get("path", "")
        if path in DOC_PATHS and self.auth.reads_need_key:
            cookies = _cookies(headers.get("cookie", ""))
            try:
                self.auth.check(
                    "GET",
                    path,
                    headers.get(self.auth.header.lower()),
                    cookies.get(SESSION_COOKIE),
                    client=_client(scope),
                    force=True,
                )
            except ApiError as exc:
                return exc
        return None

    def _same_or_allowed(self, origin: str, host: str | None) -> bool:
        normalized = origin.rstrip("/").lower()
        if normalized in self.cors_origins:
            return True
        parts = urlsplit(normalized)
        return (
            bool(host)
            and parts.scheme in ("http", "https")
            and parts.netloc == (host or "").lower()
        )


def log_internal_error(request_id: str, method: str, path: str, exc: BaseException) -> None:
    """The whole story of a 500, for the log only: the client got ``internal_error_body``."""
    logger.error("internal error, request %s: %s %s", request_id, method, path, exc_info=exc)


def _headers(scope: Scope) -> dict[str, str]:
    return {
        key.decode("latin-1").lower(): value.decode("latin-1")
        for key, value in scope.get("headers") or []
    }


def _cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            cookies[name] = value
    return cookies


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _response_headers(headers: Any, request_id: str, host: str) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for key, value in headers:
        if key.lower() == b"location":
            value = _path_only(value, host)
        out.append((key, value))
    out.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
    return out


def _path_only(location: bytes, host: str) -> bytes:
    # Starlette builds redirects (trailing slash, static folders) from the client's Host.
    parts = urlsplit(location.decode("latin-1"))
    if not parts.netloc or parts.netloc.lower() != host.lower():
        return location
    path = parts.path or "/"
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")


async def _render(error: ApiError, request_id: str, send: Send) -> None:
    headers = {REQUEST_ID_HEADER: request_id}
    if error.status == 429 and isinstance(error.details, dict) and "retry_after_s" in error.details:
        headers["Retry-After"] = str(int(error.details["retry_after_s"]) + 1)
    response = JSONResponse(error.body(), status_code=error.status, headers=headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
