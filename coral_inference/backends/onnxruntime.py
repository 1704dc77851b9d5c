"""ONNX Runtime backend (CPU, CUDA, TensorRT execution providers).

Providers come from ``backends.onnxruntime.providers`` in preference order; the
ones this onnxruntime build lacks are skipped with a warning, CPU is always the
last resort, and what the session *really* got (``get_providers()``) is what
the session reports — a requested accelerator that silently fell back to CPU
is logged as a warning, never hidden.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coral_inference.backends.base import BackendUnavailableError, ProbeResult
from coral_inference.config.schema import OnnxRuntimeOptions
from coral_inference.models.artifacts import copy_artifacts, ensure_artifact
from coral_inference.models.errors import ModelLoadError
from coral_inference.models.preprocess import preprocess_image

logger = logging.getLogger("coral_inference.backends.onnxruntime")

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class OnnxRuntimeSession:
    """One ``onnxruntime.InferenceSession``; ``run`` feeds the model's single input."""

    concurrency = 1  # intra-op threads already use the cores; parallel runs would compete

    def __init__(
        self,
        session: Any,
        *,
        model: str,
        path: Path,
        requested: list[str],
        input_spec: Any = None,
        head: Any = None,
    ):
        self._session: Any = session
        self.model = model
        self.path = path
        self.requested_providers = requested
        self.providers = list(session.get_providers())
        self.input_spec = input_spec
        self.head = head
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise BackendUnavailableError(
                f"onnxruntime: model {model!r} ({path}) has {len(inputs)} inputs "
                f"({', '.join(i.name for i in inputs)}); Coral feeds detectors with exactly one image input"
            )
        self.input_name = inputs[0].name
        self.input_shape = list(inputs[0].shape)
        self.output_names = [o.name for o in session.get_outputs()]
        self._closed = False

    @property
    def inference_session(self) -> Any:
        """The underlying ``onnxruntime.InferenceSession`` (None once closed)."""
        return self._session

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        if self._closed:
            raise RuntimeError(f"onnxruntime session of model {self.model!r} is closed")
        return self._session.run(self.output_names, {self.input_name: tensor})

    def close(self) -> None:
        # InferenceSession has no close(); dropping the reference frees it.
        self._closed = True
        self._session = None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "onnxruntime",
            "artifact": str(self.path),
            "requested_providers": self.requested_providers,
            "providers": self.providers,
            "input": {"name": self.input_name, "shape": self.input_shape},
            "outputs": self.output_names,
        }


class OnnxRuntimeBackend:
    name = "onnxruntime"
    options_model = OnnxRuntimeOptions  # how any backend declares typed options (registry, config)

    def __init__(self, options: OnnxRuntimeOptions | dict[str, Any] | None = None):
        self.options = (
            options
            if isinstance(options, OnnxRuntimeOptions)
            else OnnxRuntimeOptions.model_validate(options or {})
        )

    def probe(self) -> ProbeResult:
        if not self.options.enabled:
            return ProbeResult(False, "disabled in config (backends.onnxruntime.enabled: false)")
        if importlib.util.find_spec("onnxruntime") is None:
            return ProbeResult(
                False, "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)"
            )
        # heavy and maybe absent (find_spec above): onnxruntime's native libraries
        import onnxruntime

        available = onnxruntime.get_available_providers()
        chosen, missing = self._providers(available)
        reason = f"onnxruntime {onnxruntime.__version__}, providers {', '.join(chosen)}"
        if missing:
            reason += f" ({', '.join(missing)} requested but not in this build)"
        return ProbeResult(
            True,
            reason,
            {"available_providers": available, "providers": chosen, "missing": missing},
        )

    # ------------------------------------------------------------------ artifacts

    def list_artifacts(self, package) -> list[Any]:
        return [package.artifact(self.name)]

    def download_artifacts(self, package, dest: Path) -> list[Path]:
        return copy_artifacts(package, self.name, Path(dest))

    def preprocess(self, image: np.ndarray, package) -> np.ndarray:
        return preprocess_image(image, package.input_for(self.name))[0]

    # ------------------------------------------------------------------ sessions

    def prepare_session(self, package, options: dict[str, Any] | None = None) -> OnnxRuntimeSession:
        """Load the package's ONNX artifact; ``options`` may override providers and threads."""
        probe = self.probe()
        if not probe.available:
            raise BackendUnavailableError(
                f"onnxruntime cannot run model {package.name!r}: {probe.reason}"
            )
        path = ensure_artifact(package, self.name)
        return self.open_session(
            path,
            model=package.name,
            options=options,
            input_spec=package.input_for(self.name),
            head=package.head_for(self.name),
        )

    def open_session(
        self,
        path: Path,
        *,
        model: str,
        options: dict[str, Any] | None = None,
        input_spec: Any = None,
        head: Any = None,
    ) -> OnnxRuntimeSession:
        """An ``InferenceSession`` over ``path`` with this backend's providers and threads."""
        import onnxruntime  # heavy: loads the runtime's shared libraries

        settings = (
            OnnxRuntimeOptions.model_validate({**self.options.model_dump(), **options})
            if options
            else self.options
        )
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = settings.intra_op_num_threads
        session_options.inter_op_num_threads = settings.inter_op_num_threads
        if settings.allow_spinning is not None:
            session_options.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if settings.allow_spinning else "0"
            )
        session_options.graph_optimization_level = getattr(
            onnxruntime.GraphOptimizationLevel, _GRAPH_LEVELS[settings.graph_optimization]
        )
        names, missing = self._providers(onnxruntime.get_available_providers(), settings.providers)
        for provider in missing:
            logger.warning(
                "onnxruntime: provider %s requested for model %r is not in this onnxruntime build; "
                "install onnxruntime-gpu for CUDA/TensorRT",
                provider,
                model,
            )
        providers: list[Any] = [self._provider_entry(name, settings) for name in names]
        try:
            session = onnxruntime.InferenceSession(
                str(path), sess_options=session_options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/NoSuchFile types
            raise ModelLoadError(
                f"onnxruntime cannot load model {model!r} from {path}: {type(exc).__name__}: {_first_line(exc)}; "
                f"the file is not a valid ONNX model for this runtime (corrupt or truncated download, "
                f"or an opset newer than onnxruntime {onnxruntime.__version__}): re-export or re-download it"
            ) from exc
        result = OnnxRuntimeSession(
            session, model=model, path=Path(path), requested=names, input_spec=input_spec, head=head
        )
        accelerators = [n for n in names if n != "CPUExecutionProvider"]
        lost = [n for n in accelerators if n not in result.providers]
        if lost:
            logger.warning(
                "onnxruntime: model %r asked for %s but the session runs on %s (the provider failed to "
                "initialise: check the CUDA/TensorRT libraries)",
                model,
                ", ".join(lost),
                ", ".join(result.providers),
            )
        logger.info("onnxruntime: model %r on %s", model, ", ".join(result.providers))
        return result

    def _providers(
        self, available: list[str], requested: Sequence[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """(providers to ask for, requested ones this build lacks); CPU always ends the list."""
        wanted = [PROVIDER_NAMES[p] for p in (requested or self.options.providers)]
        chosen = [p for p in wanted if p in available]
        missing = [p for p in wanted if p not in available]
        if "CPUExecutionProvider" not in chosen:
            chosen.append("CPUExecutionProvider")
        return chosen, missing

    @staticmethod
    def _provider_entry(name: str, settings: OnnxRuntimeOptions) -> Any:
        if name == "TensorrtExecutionProvider" and settings.tensorrt_cache_dir is not None:
            return (
                name,
                {
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(settings.tensorrt_cache_dir),
                },
            )
        return name


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
