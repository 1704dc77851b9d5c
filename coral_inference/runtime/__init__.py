"""Explicit runtime initialisation: ``init(config) -> RuntimeContext`` and ``shutdown()``.

Importing Coral does nothing. ``init`` detects the platform, builds the backend
registry (built-ins and third-party backends both come through entry points),
applies the patches the config asks for and records every outcome. A second
``init`` with the same config returns the same context; ``shutdown`` undoes it all.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from coral_inference.backends.registry import BackendRegistry
from coral_inference.config.loader import LoadedConfig, load_config
from coral_inference.config.schema import RuntimeDescriptor
from coral_inference.patches.registry import PatchSet
from coral_inference.platform import detect_platform
from coral_inference.plugins import WEB_PLUGINS_GROUP, discover
from coral_inference.runtime.context import ContextKey, RuntimeContext
from coral_inference.runtime.errors import (
    CoralRuntimeError,
    RuntimeAlreadyInitialisedError,
    RuntimeClosedError,
)

__all__ = [
    "ContextKey",
    "CoralRuntimeError",
    "RuntimeAlreadyInitialisedError",
    "RuntimeClosedError",
    "RuntimeContext",
    "current_context",
    "ensure_context",
    "init",
    "shutdown",
]

logger = logging.getLogger("coral_inference.runtime")
_lock = threading.RLock()


class _State:
    """The process's current context and the configuration it was built from."""

    context: RuntimeContext | None = None
    key: str | None = None


_state = _State()


ConfigLike = LoadedConfig | RuntimeDescriptor | dict | str | os.PathLike | None


def _as_loaded(config: ConfigLike) -> LoadedConfig:
    if isinstance(config, LoadedConfig):
        return config
    if isinstance(config, RuntimeDescriptor):
        return LoadedConfig(descriptor=config)
    if isinstance(config, dict):
        return LoadedConfig(descriptor=RuntimeDescriptor.model_validate(config))
    if isinstance(config, (str, os.PathLike)):
        return load_config(Path(config))
    return load_config()


def init(config: ConfigLike = None, *, source: str = "explicit init()") -> RuntimeContext:
    """Initialise Coral's runtime; idempotent for an equal configuration."""
    loaded = _as_loaded(config)
    key = loaded.descriptor.model_dump_json()
    with _lock:
        current = _state.context
        if current is not None:
            if _state.key == key:
                return current
            raise RuntimeAlreadyInitialisedError(
                "Coral is already initialised with a different configuration; "
                "call coral_inference.shutdown() first"
            )
        context = _build(loaded, source)
        _state.context, _state.key = context, key
        return context


def _build(loaded: LoadedConfig, source: str) -> RuntimeContext:
    cfg = loaded.descriptor
    skip = tuple(cfg.plugins.disabled)
    backend_options = {
        "onnxruntime": cfg.backends.onnxruntime,
        "rknn": cfg.backends.rknn,
        **cfg.backends.options,
    }
    backends = BackendRegistry(backend_options)
    patches = PatchSet()
    web_plugins = []
    if cfg.plugins.entry_points:
        backends.discover(skip=skip + tuple(cfg.backends.disabled))
        patches.discover(skip=skip)
        web_plugins = discover(WEB_PLUGINS_GROUP, skip=skip)
    else:
        # Built-ins still register when third-party discovery is off.
        from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
        from coral_inference.backends.rknn import RknnBackend

        for name, factory in (("onnxruntime", OnnxRuntimeBackend), ("rknn", RknnBackend)):
            if name not in cfg.backends.disabled:
                backends.register(name, factory, origin="built-in")
    context = RuntimeContext(
        loaded=loaded,
        platform=detect_platform(cfg.platform),
        backends=backends,
        patches=patches,
        web_plugins=web_plugins,
        init_source=source,
    )
    patches.apply(cfg.patches, context)
    logger.info("Coral runtime initialised (%s) on %s", source, context.platform.kind)
    return context


def current_context() -> RuntimeContext | None:
    return _state.context


def ensure_context() -> RuntimeContext:
    """The current context, or the one implicit init: from ``CORAL_CONFIG``/``CORAL_*`` env.

    Used by the workflow plugin's initializer inside an inference server that loaded
    ``coral_workflows`` without anyone calling ``init``.
    """
    with _lock:
        context = _state.context
        if context is not None:
            return context
        logger.warning(
            "coral_workflows: no coral_inference.init() in this process; initialising from %s",
            f"CORAL_CONFIG={os.environ['CORAL_CONFIG']}"
            if os.environ.get("CORAL_CONFIG")
            else "defaults and CORAL_* environment",
        )
        return init(
            load_config(), source="implicit init by coral_workflows (CORAL_CONFIG / environment)"
        )


def shutdown() -> list[str]:
    """Undo ``init``: close sessions and services, disable patches. Returns closer errors."""
    with _lock:
        context = _state.context
        _state.context, _state.key = None, None
    return context.close() if context is not None else []
