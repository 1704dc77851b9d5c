"""What ``coral_workflows`` runs inside an inference server when the engine asks for Coral.

* A bad ``CORAL_CONFIG`` stays Coral's: only steps that need the Coral context fail,
  with :class:`CoralConfigurationError` (a Workflows error, so the server answers
  with its message: the file, the dotted path and the fix). Workflows without Coral
  keep working, and the next compilation reads the file again, so fixing it heals
  the server without a restart.
* Storage paths left at their defaults resolve under :func:`data_dir`, an absolute
  location, never the server's working directory.
* Inside a stream-manager pipeline process the worker hooks attach
  (:func:`coral_inference.server.worker.attach_stream_manager_worker`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from coral_inference import compat
from coral_inference.config.loader import ConfigError, LoadedConfig, load_config

if TYPE_CHECKING:
    from coral_inference.runtime.context import RuntimeContext

logger = logging.getLogger("coral_inference.server")

DATA_DIR_ENV = "CORAL_DATA_DIR"
STORAGE_DEFAULTS = {
    "storage.root": "",
    "storage.recordings": "recordings",
    "storage.results": "results",
}

_lock = threading.Lock()
_logged: set[str] = set()
_error_class: Callable[..., Exception] | None = None


def data_dir(environ: dict[str, str] | None = None) -> Path:
    """Where Coral keeps its data in a server when the config does not say.

    ``$CORAL_DATA_DIR`` if set; ``/var/lib/coral`` for root; else
    ``$XDG_DATA_HOME/coral`` (``~/.local/share/coral`` when ``XDG_DATA_HOME`` is unset).
    """
    env = dict(os.environ) if environ is None else environ
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser().resolve()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/coral")
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(base).expanduser() / "coral").resolve()


def load_server_config(environ: dict[str, str] | None = None) -> LoadedConfig:
    """``CORAL_CONFIG`` / ``CORAL_*`` as usual; storage paths left at defaults become absolute.

    ``storage.recordings`` and ``storage.results`` default to ``recordings`` and
    ``results`` under ``storage.root``; ``storage.root`` defaults to :func:`data_dir`.
    """
    loaded = load_config(environ=environ)
    # Under storage.root when the config sets it, else under the data directory.
    root_set = loaded.source_of("storage.root") != "default"
    base = Path(loaded.descriptor.storage.root).resolve() if root_set else data_dir(environ)
    overrides = [
        f"{dotted}={base / sub if sub else base}"
        for dotted, sub in STORAGE_DEFAULTS.items()
        if loaded.source_of(dotted) == "default"
    ]
    return load_config(environ=environ, overrides=overrides) if overrides else loaded


def configuration_error(exc: ConfigError) -> Exception:
    """A Workflows error carrying the config problems, so the server shows them to the caller."""
    global _error_class
    if _error_class is None:
        base = compat.import_module("inference.core.workflows.errors").WorkflowError

        class CoralConfigurationError(base):  # type: ignore[misc, valid-type]
            """The Coral configuration of this server cannot be used (``CORAL_CONFIG``)."""

        _error_class = CoralConfigurationError
    source = os.environ.get("CORAL_CONFIG")
    where = f"CORAL_CONFIG={source}" if source else "the CORAL_* environment"
    message = (
        f"Coral is not configured correctly ({where}):\n  "
        + "\n  ".join(exc.problems)
        + "\nFix it (check with: coral-runtime config validate); the next request reads it again, "
        "no restart needed."
    )
    return _error_class(public_message=message, context="coral_configuration", inner_error=exc)


def plugin_context() -> RuntimeContext:
    """The Coral context for a step: the current one, or one implicit init from the server config.

    Raises the Workflows error from :func:`configuration_error` for a bad config.
    """
    # runtime stack (numpy, prometheus_client, backends: ~0.6 s); the launcher imports this
    from coral_inference.runtime import current_context, init
    from coral_inference.server.worker import attach_stream_manager_worker

    with _lock:
        context = current_context()
        if context is None:
            try:
                loaded = load_server_config()
            except ConfigError as exc:
                raise configuration_error(exc) from None
            context = init(
                loaded, source="implicit init by coral_workflows (CORAL_CONFIG / environment)"
            )
            logger.info("Coral storage: %s", context.config.storage.root)
    attach_stream_manager_worker(context)
    return context


def initialise_for_compilation() -> None:
    """``load_blocks`` with ``CORAL_CONFIG`` set: apply Coral's patches, never fail the compile.

    A bad config is logged (once per distinct problem) and left to the steps that need
    Coral, so workflows without Coral still compile.
    """
    try:
        plugin_context()
    except Exception as exc:  # noqa: BLE001 - reported by the steps that need Coral
        message = str(getattr(exc, "public_message", exc))
        if message not in _logged:
            _logged.add(message)
            logger.error("%s", message)
