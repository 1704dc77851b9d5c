"""Coral runtime for Roboflow Workflows on edge boxes (RKNN NPU, ONNX Runtime, CPU).

Importing this package does nothing: call ``coral_inference.init(config)`` to get a
``RuntimeContext`` and ``coral_inference.shutdown()`` to undo it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RuntimeContext", "init", "shutdown", "current_context", "load_config"]


def __getattr__(name: str) -> Any:
    # Lazy so that ``import coral_inference`` stays cheap and side-effect free.
    if name in {"init", "shutdown", "current_context", "RuntimeContext"}:
        # runtime pulls config, backends, metrics (pydantic, yaml, numpy, prometheus_client: ~2 s)
        from coral_inference import runtime

        return getattr(runtime, name)
    if name == "load_config":
        # config pulls pydantic and yaml (~0.9 s): `import coral_inference` stays bare
        from coral_inference.config import load_config

        return load_config
    raise AttributeError(f"module 'coral_inference' has no attribute {name!r}")
