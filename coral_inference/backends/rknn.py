"""Rockchip NPU backend through ``rknnlite.api.RKNNLite`` (imported lazily)."""

from __future__ import annotations

import ctypes.util
import importlib.util
from pathlib import Path
from typing import Any

from coral_inference.backends.base import ProbeResult
from coral_inference.config.schema import RknnOptions

RUNTIME_LIBRARY_PATHS = (Path("/usr/lib/librknnrt.so"), Path("/usr/lib64/librknnrt.so"), Path("/usr/local/lib/librknnrt.so"))


class RknnBackend:
    name = "rknn"

    def __init__(self, options: RknnOptions | dict[str, Any] | None = None):
        self.options = options if isinstance(options, RknnOptions) else RknnOptions.model_validate(options or {})

    def probe(self) -> ProbeResult:
        if not self.options.enabled:
            return ProbeResult(False, "disabled in config (backends.rknn.enabled: false)")
        if importlib.util.find_spec("rknnlite") is None:
            return ProbeResult(
                False,
                "rknn-toolkit-lite2 is not installed (aarch64 boards only): pip install rknn-toolkit-lite2",
            )
        library = next((p for p in RUNTIME_LIBRARY_PATHS if p.exists()), None) or ctypes.util.find_library("rknnrt")
        if library is None:
            return ProbeResult(False, "librknnrt.so not found: install the Rockchip NPU runtime from the board image")
        return ProbeResult(True, f"RKNN Lite with {library}", {"library": str(library)})
