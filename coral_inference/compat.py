"""Which Roboflow ``inference`` is installed, and the one way to import it (offline, in order).

The names Coral uses from ``inference`` are ordinary imports in
``coral_inference.inference_adapter``, which calls ``load_inference_core()`` first;
``import_module`` here is for the few modules that have no name there (the server
launcher, the Roboflow download) and ``resolve_attribute`` for patch targets, which
are strings by nature.

What this module knows about the versions it supports:

* The supported range (``SUPPORTED_INFERENCE``); outside it, ``require_inference``
  raises ``UnsupportedInferenceError`` with the command that fixes it.
* 1.6.1 moved the Workflows engine into the ``roboflow_workflows`` distribution and
  1.8.0 the video/stream stack into ``streamvision``. inference keeps the legacy
  ``inference.core.workflows.*`` / ``inference.core.interfaces.stream.*`` names as
  aliases of the very same module objects, so Coral imports the legacy names: they
  resolve on every supported release, before and after the moves.
* ``roboflow_workflows`` has a set-once process configuration that ``import
  inference.core`` installs. Importing an engine module first (with e.g.
  ``MODEL_CACHE_DIR`` set) makes the later ``import inference.core`` fail, so every
  accessor here imports ``inference.core`` first.
* ``import inference.core`` calls a version-check service on the internet unless
  ``DISABLE_VERSION_CHECK`` is set; Coral sets it (unless the user set it) right
  before that import, never at import of Coral itself.

Nothing here imports ``inference`` at module import time.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

SUPPORTED_INFERENCE = SpecifierSet(">=1.3,<2")
INFERENCE_DISTRIBUTIONS = ("inference", "inference-gpu", "inference-cpu", "inference-core")
ENGINE_MOVED_IN = Version("1.6.1")
STREAM_MOVED_IN = Version("1.8.0")

# Offline defaults applied just before the first ``import inference.core``; the user's
# own values always win.
OFFLINE_DEFAULTS = {"DISABLE_VERSION_CHECK": "True"}

_lock = threading.Lock()


class InferenceNotInstalledError(ImportError):
    """No Roboflow inference distribution is installed."""


class UnsupportedInferenceError(ImportError):
    """The installed inference release is outside Coral's supported range."""


@dataclass(frozen=True)
class InferenceInfo:
    distribution: str
    version: Version
    supported: bool
    engine_module: str
    stream_module: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution,
            "version": str(self.version),
            "supported": self.supported,
            "supported_range": str(SUPPORTED_INFERENCE),
            "engine_module": self.engine_module,
            "stream_module": self.stream_module,
        }


def inference_info() -> InferenceInfo | None:
    """Which inference distribution is installed, from package metadata (imports nothing)."""
    for name in INFERENCE_DISTRIBUTIONS:
        try:
            version = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue
        return InferenceInfo(
            distribution=name,
            version=version,
            supported=version in SUPPORTED_INFERENCE,
            engine_module="roboflow_workflows"
            if version >= ENGINE_MOVED_IN
            else "inference.core.workflows",
            stream_module="streamvision"
            if version >= STREAM_MOVED_IN
            else "inference.core.interfaces.stream",
        )
    return None


def require_inference() -> InferenceInfo:
    """The installed inference, or an error saying what to install."""
    info = inference_info()
    if info is None:
        raise InferenceNotInstalledError(
            "Roboflow inference is not installed; Coral's workflow blocks and pipelines need it. "
            f"Install one distribution, e.g.: pip install 'inference{SUPPORTED_INFERENCE}' "
            "(or inference-cpu / inference-gpu), or: pip install 'coral-inference[inference]'"
        )
    if not info.supported:
        raise UnsupportedInferenceError(
            f"{info.distribution} {info.version} is outside Coral's supported range "
            f"{SUPPORTED_INFERENCE}; install a supported release: "
            f"pip install '{info.distribution}{SUPPORTED_INFERENCE}'"
        )
    return info


def load_inference_core() -> ModuleType:
    """Import ``inference.core`` once, offline, before any engine module."""
    with _lock:
        if "inference.core" not in sys.modules:
            require_inference()
            for name, value in OFFLINE_DEFAULTS.items():
                os.environ.setdefault(name, value)
        return importlib.import_module("inference.core")


def import_module(name: str) -> ModuleType:
    """Import any ``inference`` module by its legacy name, after ``inference.core``."""
    if not name.startswith("inference"):
        raise ValueError(f"compat.import_module is for inference modules, not {name!r}")
    load_inference_core()
    return importlib.import_module(name)


def resolve_attribute(dotted: str) -> tuple[Any, str, Any]:
    """Resolve ``module:Qual.attr`` to ``(owner, attr, value)``; raises ``LookupError`` if absent."""
    module_name, sep, qualname = dotted.partition(":")
    if not sep or not qualname:
        raise ValueError(f"{dotted!r}: expected 'module:Attribute.path'")
    try:
        owner: Any = (
            import_module(module_name)
            if module_name.startswith("inference")
            else importlib.import_module(module_name)
        )
    except ImportError as exc:
        raise LookupError(f"module {module_name} cannot be imported: {exc}") from exc
    *parents, attr = qualname.split(".")
    for part in parents:
        if not hasattr(owner, part):
            raise LookupError(f"{module_name}:{qualname}: {part!r} does not exist")
        owner = getattr(owner, part)
    if not hasattr(owner, attr):
        raise LookupError(f"{module_name}:{qualname}: {attr!r} does not exist")
    return owner, attr, getattr(owner, attr)
