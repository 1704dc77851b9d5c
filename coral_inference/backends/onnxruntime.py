"""ONNX Runtime backend (CPU, CUDA, TensorRT execution providers)."""

from __future__ import annotations

import importlib.util
from typing import Any

from coral_inference.backends.base import ProbeResult
from coral_inference.config.schema import OnnxRuntimeOptions


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, options: OnnxRuntimeOptions | dict[str, Any] | None = None):
        self.options = options if isinstance(options, OnnxRuntimeOptions) else OnnxRuntimeOptions.model_validate(options or {})

    def probe(self) -> ProbeResult:
        if not self.options.enabled:
            return ProbeResult(False, "disabled in config (backends.onnxruntime.enabled: false)")
        if importlib.util.find_spec("onnxruntime") is None:
            return ProbeResult(False, "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)")
        import onnxruntime

        available = onnxruntime.get_available_providers()
        return ProbeResult(True, f"onnxruntime {onnxruntime.__version__}", {"available_providers": available})
