"""Web plugins: routers, static files and whole UIs from other distributions.

A distribution declares an entry point in the group ``coral_inference.web_plugins``
whose object is a ``WebPluginSpec``, a callable ``(context) -> WebPluginSpec``, or
a mapping with the same fields. Its routers are mounted under
``/plugins/<name>`` (or its own ``prefix``), its static directory under
``<prefix>/static``, and with ``services.ui.mode: plugin`` and
``services.ui.plugin: <name>`` its ``ui_dir`` replaces the dashboard at ``/``.
A plugin that fails to load or to build is reported, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from coral_inference.runtime.context import RuntimeContext

logger = logging.getLogger("coral_inference.webapp.plugins")


@dataclass
class WebPluginSpec:
    name: str
    routers: list[APIRouter] = field(default_factory=list)
    prefix: str | None = None
    static_dir: Path | None = None
    ui_dir: Path | None = None
    description: str = ""

    @property
    def mount_prefix(self) -> str:
        return (self.prefix or f"/plugins/{self.name}").rstrip("/")


@dataclass
class LoadedWebPlugin:
    name: str
    target: str
    distribution: str | None
    version: str | None
    spec: WebPluginSpec | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "distribution": self.distribution,
            "version": self.version,
            "loaded": self.spec is not None,
            "error": self.error,
            "prefix": self.spec.mount_prefix if self.spec else None,
            "routes": sum(len(r.routes) for r in self.spec.routers) if self.spec else 0,
            "static": bool(self.spec and self.spec.static_dir),
            "ui": bool(self.spec and self.spec.ui_dir),
            "description": self.spec.description if self.spec else "",
        }


def build_web_plugins(records: list[Any], context: RuntimeContext) -> list[LoadedWebPlugin]:
    """Turn discovered entry points (``context.web_plugins``) into specs, capturing every failure."""
    loaded = []
    for record in records:
        item = LoadedWebPlugin(
            record.name, record.target, record.distribution, record.version, error=record.error
        )
        if record.error is None:
            try:
                item.spec = _as_spec(record.name, record.obj, context)
            except Exception as exc:  # a broken third-party plugin must not take the app down
                item.error = f"{type(exc).__name__}: {exc}"
        if item.error:
            logger.error("web plugin %s not mounted: %s", record.name, item.error)
        loaded.append(item)
    return loaded


def _as_spec(name: str, obj: Any, context: RuntimeContext) -> WebPluginSpec:
    if callable(obj) and not isinstance(obj, (WebPluginSpec, Mapping)):
        obj = obj(context)
    if isinstance(obj, Mapping):
        obj = WebPluginSpec(**{"name": name, **obj})
    if not isinstance(obj, WebPluginSpec):
        raise TypeError(
            f"entry point gave {type(obj).__name__}; expected a WebPluginSpec, a mapping or a factory"
        )
    for router in obj.routers:
        if not isinstance(router, APIRouter):
            raise TypeError(
                f"routers must be fastapi.APIRouter objects, got {type(router).__name__}"
            )
    for attr in ("static_dir", "ui_dir"):
        value = getattr(obj, attr)
        if value is not None:
            path = Path(value)
            if not path.is_dir():
                raise FileNotFoundError(f"{attr} {path} is not a directory")
            setattr(obj, attr, path)
    if not obj.mount_prefix.startswith("/") or obj.mount_prefix.startswith(
        ("/api", "/healthz", "/readyz", "/metrics")
    ):
        raise ValueError(
            f"prefix {obj.mount_prefix!r} must start with '/' and not shadow Coral's own routes"
        )
    return obj
