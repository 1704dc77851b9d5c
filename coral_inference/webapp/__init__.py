"""The web control plane: ``create_web_app(config, context)`` builds the FastAPI app.

Services (``webapp.services``) hold the logic and know nothing of HTTP; routes
(``webapp.routes``) parse, call a service and shape the response. Importing
this package builds nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WebPluginSpec", "create_web_app"]


def __getattr__(name: str) -> Any:
    if name == "create_web_app":
        # heavy: the app loads FastAPI, httpx, aiosqlite, the runtime (~2.8 s)
        from coral_inference.webapp.app import create_web_app

        return create_web_app
    if name == "WebPluginSpec":
        # heavy: FastAPI/starlette (~1 s) come with the plugin spec
        from coral_inference.webapp.plugins import WebPluginSpec

        return WebPluginSpec
    raise AttributeError(f"module 'coral_inference.webapp' has no attribute {name!r}")
