"""``RuntimeContext``: what ``init`` found and built, and what blocks and services query."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from coral_inference import compat
from coral_inference.backends.base import BackendAdapter
from coral_inference.backends.registry import BackendRegistry
from coral_inference.config.loader import LoadedConfig
from coral_inference.config.schema import RuntimeDescriptor
from coral_inference.patches.registry import PatchSet
from coral_inference.plugins import PluginRecord
from coral_inference.runtime.platform import PlatformInfo


class RuntimeContext:
    def __init__(
        self,
        loaded: LoadedConfig,
        platform: PlatformInfo,
        backends: BackendRegistry,
        patches: PatchSet,
        web_plugins: list[PluginRecord],
        init_source: str,
    ):
        self.loaded = loaded
        self.platform = platform
        self.backends = backends
        self.patches = patches
        self.web_plugins = web_plugins
        self.init_source = init_source
        self._closers: list[tuple[str, Callable[[], None]]] = []
        self._services: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.closed = False

    @property
    def config(self) -> RuntimeDescriptor:
        return self.loaded.descriptor

    def get_backend(self, name: str) -> BackendAdapter:
        """A registered backend by name, or the preferred available one for ``"auto"``."""
        return self.backends.choose(name, self.config.backends.order)

    def get_model(self, name: str, backend: str | None = None) -> Any:
        """A loaded model (package + session) by config name or package path, cached."""
        from coral_inference.models.loaded import load_model  # models are optional at init

        return self.service(("model", name, backend), lambda: load_model(self, name, backend))

    def is_patch_enabled(self, name: str) -> bool:
        return self.patches.is_enabled(name)

    def service(self, key: Any, factory: Callable[[], Any]) -> Any:
        """A per-context singleton (model sessions, stream hub, metrics hub…), closed at shutdown."""
        with self._lock:
            if self.closed:
                raise RuntimeError("this Coral runtime context was shut down; call coral_inference.init() again")
            if key not in self._services:
                obj = factory()
                self._services[key] = obj
                closer = getattr(obj, "close", None)
                if callable(closer):
                    self.on_shutdown(f"service {key}", closer)
            return self._services[key]

    def on_shutdown(self, label: str, closer: Callable[[], None]) -> None:
        self._closers.append((label, closer))

    def close(self) -> list[str]:
        """Stop background work, close sessions, disable patches; returns any errors."""
        errors = []
        with self._lock:
            if self.closed:
                return errors
            self.closed = True
            while self._closers:
                label, closer = self._closers.pop()
                try:
                    closer()
                except Exception as exc:  # one failing closer must not leave the rest open
                    errors.append(f"{label}: {type(exc).__name__}: {exc}")
            self._services.clear()
            self.patches.disable_all(self)
            self.backends.close()
        return errors

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary: platform, inference, backends, patches, plugins."""
        info = compat.inference_info()
        return {
            "coral_version": _coral_version(),
            "python": sys.version.split()[0],
            "init": self.init_source,
            "config_file": str(self.loaded.file) if self.loaded.file else None,
            "platform": self.platform.as_dict(),
            "inference": info.as_dict() if info else {"installed": False, "supported_range": str(compat.SUPPORTED_INFERENCE)},
            "backends": self.backends.describe(),
            "patches": self.patches.describe(),
            "plugins": {
                "workflows": list(self.config.plugins.workflows),
                "web": [record.as_dict() for record in self.web_plugins],
            },
        }


def _coral_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("coral-inference")
    except PackageNotFoundError:
        return "unknown (not installed)"
