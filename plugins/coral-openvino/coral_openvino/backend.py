"""``OpenVinoBackend``: Coral's backend protocol over Intel OpenVINO (imported lazily).

Which artifact: the package's own ``artifacts.openvino`` when it has one (an
OpenVINO IR ``.xml`` with its ``.bin`` as a companion, or an ONNX file), else the
first artifact whose format is ``onnx`` (usually ``artifacts.onnxruntime``): OpenVINO
compiles ONNX directly, so every package Coral runs on ONNX Runtime runs here with
no conversion step. Input spec and head come from the artifact that is used.

Compiled models are cached (``CACHE_DIR``), so only the first start on a machine
pays for compilation. Importing this module does not import OpenVINO: Coral loads
it to read ``options_model`` when it validates a configuration.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from coral_inference.backends.base import BackendError, BackendUnavailableError, ProbeResult
from coral_inference.models.artifacts import companion_paths, copy_artifacts, ensure_artifact
from coral_inference.models.errors import ArtifactNotFoundError, ModelLoadError
from coral_inference.models.package import ArtifactSpec, ModelPackage
from coral_openvino.options import OpenVinoOptions
from coral_openvino.session import OpenVinoSession

logger = logging.getLogger("coral_openvino")

NAME = "openvino"
OPTIONS_PATH = f"backends.options.{NAME}"
INSTALL_HINT = "pip install openvino (or: pip install coral-openvino)"
# Why OpenVINO may not list a device, checked against the machine.
_DEVICE_NODES = {"GPU": "/dev/dri", "NPU": "/dev/accel"}
_DEVICE_FIXES = {
    "GPU": (
        "an Intel GPU and its compute runtime (Debian/Ubuntu: intel-opencl-icd; containers: "
        "--device /dev/dri)"
    ),
    "NPU": (
        "an Intel Core Ultra NPU with the intel NPU driver loaded (linux-npu-driver; containers: "
        "--device /dev/accel)"
    ),
}


class OpenVinoError(BackendError):
    """OpenVINO refused to read, compile or run a model; the message names which and why."""


class OpenVinoDeviceMissingError(BackendUnavailableError):
    """The configured device is not among OpenVINO's available devices here."""


class OpenVinoBackend:
    name = NAME
    options_model = OpenVinoOptions
    # Where device nodes are looked for (tests point it at a fake /dev).
    system_root = Path("/")

    def __init__(self, options: OpenVinoOptions | dict[str, Any] | None = None):
        self.options = (
            options
            if isinstance(options, OpenVinoOptions)
            else OpenVinoOptions.model_validate(options or {})
        )
        self._core: Any = None

    # ------------------------------------------------------------------ probing

    def core(self) -> Any:
        if self._core is None:
            import openvino

            self._core = openvino.Core()
        return self._core

    def available_devices(self) -> list[str]:
        return list(self.core().available_devices)

    def probe(self) -> ProbeResult:
        if not self.options.enabled:
            return ProbeResult(False, f"disabled in config ({OPTIONS_PATH}.enabled: false)")
        if importlib.util.find_spec("openvino") is None:
            return ProbeResult(False, f"openvino is not installed: {INSTALL_HINT}")
        import openvino

        try:
            devices = self.available_devices()
        except Exception as exc:  # a broken install reports, it does not crash the registry
            return ProbeResult(
                False, f"openvino {_short(openvino.__version__)} failed to list devices: {exc}"
            )
        names = {d: _device_name(self.core(), d) for d in devices}
        details = {
            "version": _short(openvino.__version__),
            "device_names": names,
            "device": self.options.device,
            "performance_hint": self.options.performance_hint,
        }
        missing = self.missing_device_reason(devices)
        if missing:
            return ProbeResult(False, missing, details, devices=devices)
        reason = (
            f"openvino {_short(openvino.__version__)}, device {self.options.device} "
            f"({self.options.performance_hint.lower()}), available: {', '.join(devices)}"
        )
        return ProbeResult(True, reason, details, devices=devices)

    def missing_device_reason(self, devices: list[str]) -> str | None:
        """None when the configured device is available, else why not and the fix."""
        wanted = self.options.device
        if wanted == "AUTO":
            return (
                None
                if devices
                else "OpenVINO lists no device at all (broken install?): reinstall openvino"
            )
        if any(d == wanted or d.startswith(wanted + ".") for d in devices):
            return None
        node = _DEVICE_NODES.get(wanted)
        why = ""
        if node is not None:
            path = self.system_root / node.lstrip("/")
            if not path.exists():
                why = f"{node} does not exist, so the kernel has no {wanted} device here; "
            else:
                why = f"{node} exists but OpenVINO's {wanted} plugin found no usable device; "
        return (
            f"OpenVINO device {wanted} ({OPTIONS_PATH}.device) is not available on this machine "
            f"(available: {', '.join(devices) or 'none'}): {why}"
            f"it needs {_DEVICE_FIXES.get(wanted, wanted)}; "
            f"or set {OPTIONS_PATH}.device to one of: {', '.join(_families(devices)) or 'CPU'}"
        )

    # ------------------------------------------------------------------ artifacts

    def artifact_key(self, package: ModelPackage) -> str:
        """``openvino`` when the package has it, else its first ONNX artifact."""
        if NAME in package.manifest.artifacts:
            return NAME
        onnx = package.artifacts_of_format("onnx")
        if onnx:
            return onnx[0]
        have = ", ".join(f"{k} ({s.kind})" for k, s in package.manifest.artifacts.items())
        raise ArtifactNotFoundError(
            f"model package {package.name!r} ({package.manifest_path}) has no artifact OpenVINO "
            f"can load: it has {have}; add artifacts.{NAME} (an OpenVINO IR .xml with its .bin as "
            f"a companion) or an ONNX artifact"
        )

    def list_artifacts(self, package: ModelPackage) -> list[ArtifactSpec]:
        return [package.artifact(self.artifact_key(package))]

    def download_artifacts(self, package: ModelPackage, dest: Path) -> list[Path]:
        return copy_artifacts(package, self.artifact_key(package), Path(dest))

    def preprocess(self, image: np.ndarray, package: ModelPackage) -> np.ndarray:
        from coral_inference.models.preprocess import preprocess_image

        return preprocess_image(image, package.input_for(self.artifact_key(package)))[0]

    # ------------------------------------------------------------------ sessions

    def cache_dir(self, settings: OpenVinoOptions | None = None) -> Path | None:
        settings = settings or self.options
        if not settings.cache:
            return None
        if settings.cache_dir is not None:
            return settings.cache_dir
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return base / "coral" / "openvino"

    def compile_config(self, settings: OpenVinoOptions | None = None) -> dict[str, Any]:
        """The OpenVINO properties a model is compiled with."""
        settings = settings or self.options
        config: dict[str, Any] = {"PERFORMANCE_HINT": settings.performance_hint}
        if settings.streams != "AUTO":
            config["NUM_STREAMS"] = str(settings.streams)
        if settings.threads and settings.device in ("CPU", "AUTO"):
            config["INFERENCE_NUM_THREADS"] = settings.threads
        precision = settings.precision
        if precision == "auto" and settings.device == "CPU":
            precision = (
                "f32"  # bf16 on AMX/AVX512-BF16 CPUs would move boxes; keep ONNX Runtime's results
            )
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        cache = self.cache_dir(settings)
        if cache is not None:
            config["CACHE_DIR"] = str(cache)
        return config

    def prepare_session(
        self, package: ModelPackage, options: dict[str, Any] | None = None
    ) -> OpenVinoSession:
        """Compile the package's artifact for the configured device, with the model cache."""
        settings = (
            OpenVinoOptions.model_validate({**self.options.model_dump(), **options})
            if options
            else self.options
        )
        if not settings.enabled:
            raise BackendUnavailableError(
                f"openvino cannot run model {package.name!r}: disabled in config"
            )
        if importlib.util.find_spec("openvino") is None:
            raise BackendUnavailableError(
                f"openvino cannot run model {package.name!r}: {INSTALL_HINT}"
            )
        import openvino

        missing = OpenVinoBackend(settings).missing_device_reason(self.available_devices())
        if missing:
            raise OpenVinoDeviceMissingError(
                f"openvino cannot run model {package.name!r}: {missing}"
            )
        key = self.artifact_key(package)
        path = ensure_artifact(package, key)
        weights = [p for p in companion_paths(package, key) if p.suffix == ".bin"]
        input_spec = package.input_for(key)
        core = self.core()
        try:
            model = (
                core.read_model(str(path), str(weights[0]))
                if weights
                else core.read_model(str(path))
            )
        except Exception as exc:
            raise ModelLoadError(
                f"openvino cannot read model {package.name!r} from {path} (artifacts.{key}): "
                f"{_first_line(exc)}; the file is not a valid ONNX/IR model for openvino "
                f"{_short(openvino.__version__)}: re-export it"
            ) from exc
        if len(model.inputs) != 1:
            raise OpenVinoError(
                f"openvino: model {package.name!r} ({path}) has {len(model.inputs)} inputs; "
                f"Coral feeds models with exactly one image input"
            )
        if model.inputs[0].get_partial_shape().is_dynamic:
            shape = _static_shape(input_spec)
            model.reshape({0: shape})
            logger.info(
                "openvino: model %r has a dynamic input; compiled for %s", package.name, shape
            )
        config = self.compile_config(settings)
        cache = self.cache_dir(settings)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
        try:
            compiled = core.compile_model(model, settings.device, config)
        except Exception as exc:
            raise OpenVinoError(
                f"openvino cannot compile model {package.name!r} ({path}) for {settings.device}: "
                f"{_first_line(exc)}"
            ) from exc
        requests = settings.infer_requests or int(
            compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        )
        session = OpenVinoSession(
            compiled,
            [compiled.create_infer_request() for _ in range(max(1, requests))],
            model=package.name,
            path=path,
            device=settings.device,
            input_spec=input_spec,
            head=package.head_for(key),
            cache_dir=cache,
        )
        logger.info(
            "openvino: model %r on %s with %d infer requests",
            package.name,
            session.describe().get("execution_devices"),
            session.concurrency,
        )
        return session

    def close(self) -> None:
        self._core = None


def _static_shape(spec: Any) -> list[int]:
    if spec.layout == "NCHW":
        return [1, 3, spec.height, spec.width]
    return [1, spec.height, spec.width, 3]


def _families(devices: list[str]) -> list[str]:
    families = []
    for device in devices:
        family = device.split(".")[0]
        if family not in families:
            families.append(family)
    return families + (["AUTO"] if devices else [])


def _device_name(core: Any, device: str) -> str:
    try:
        return str(core.get_property(device, "FULL_DEVICE_NAME"))
    except Exception:
        return device


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _short(version: str) -> str:
    """``2026.4.1-22982-e213a14-releases/2026/4`` -> ``2026.4.1``."""
    return version.split("-", 1)[0]
