"""ONNX -> RKNN with Rockchip's ``rknn-toolkit2`` (``coral-runtime models convert``).

The converter bakes the package's normalisation into the ``.rknn``
(``rknn.config(mean_values, std_values)``), so the NPU is fed NHWC uint8 RGB
frames as they come out of the letterbox. Coral's ``(x * scale - mean) / std`` is
rknn's ``(x - mean_values) / std_values`` with ``mean_values = mean / scale`` and
``std_values = std / scale``.

``rknn-toolkit2`` pins old torch/numpy/onnx releases; it belongs in its own
environment (``scripts/rknn-toolkit-env``), not in the one running Coral.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coral_inference.backends.base import BackendError
from coral_inference.models.package import HeadSpec, InputSpec, ModelPackage

INSTALL_HINT = (
    "rknn-toolkit2 is not installed in this Python environment. It is Rockchip's converter "
    "(Linux x86-64 or aarch64, Python 3.8-3.12) and pins old torch/numpy/onnx releases, so give it "
    "its own environment: bash scripts/rknn-toolkit-env (creates ~/.cache/coral/rknn-toolkit2), then "
    "run this command with that environment's python: ~/.cache/coral/rknn-toolkit2/bin/python -m "
    "coral_inference.cli.main models convert ... — or pip install rknn-toolkit2==2.3.2 in a fresh venv"
)


class ConverterMissingError(BackendError):
    """``rknn-toolkit2`` (``rknn.api``) cannot be imported."""


class ConversionError(BackendError):
    """A step of the RKNN build returned a failure code."""


@dataclass(frozen=True)
class RknnBuildPlan:
    onnx: Path
    output: Path
    target_platform: str
    mean_values: list[list[float]]
    std_values: list[list[float]]
    quantize: bool
    dataset: Path | None
    head: HeadSpec

    def manifest_entry(self, package_root: Path, sha256: str) -> dict[str, Any]:
        """The ``artifacts.rknn`` entry to add to ``coral-model.yaml``."""
        return {
            "file": str(self.output.relative_to(package_root)) if self.output.is_relative_to(package_root) else str(self.output),
            "sha256": sha256,
            "target_platform": self.target_platform,
            "input": {"layout": "NHWC", "dtype": "uint8"},
            "head": self.head.model_dump(exclude_defaults=True),
        }

    def manifest_snippet(self, package_root: Path, sha256: str) -> str:
        return yaml.safe_dump({"artifacts": {"rknn": self.manifest_entry(package_root, sha256)}}, sort_keys=False)


def normalisation_for_rknn(spec: InputSpec) -> tuple[list[list[float]], list[list[float]]]:
    """``rknn.config`` mean/std values equivalent to the package's input normalisation."""
    mean = [round(m / spec.scale, 6) for m in spec.mean]
    std = [round(s / spec.scale, 6) for s in spec.std]
    return [mean], [std]


def plan_rknn_build(
    package: ModelPackage,
    *,
    target_platform: str | None = None,
    onnx: str | Path | None = None,
    output: str | Path | None = None,
    quantize: bool | None = None,
    dataset: str | Path | None = None,
) -> RknnBuildPlan:
    """What to build: the manifest's ``convert.rknn`` section, overridden by the arguments."""
    conversion = package.manifest.convert.rknn
    if onnx is not None:
        source, head = Path(onnx), package.head
    elif conversion is not None:
        source, head = package.root / conversion.onnx, conversion.head or package.head
    elif "onnxruntime" in package.manifest.artifacts and package.local_artifact_path("onnxruntime"):
        source, head = package.local_artifact_path("onnxruntime"), package.head_for("onnxruntime")
    else:
        raise ConversionError(
            f"model package {package.name!r}: nothing to convert; give --onnx FILE or add convert.rknn.onnx "
            f"to {package.manifest_path}"
        )
    if not source.is_file():
        raise ConversionError(f"{source}: ONNX file to convert does not exist")
    target = target_platform or (conversion.target_platform if conversion else "rk3588")
    quantize = quantize if quantize is not None else bool(conversion and conversion.quantize)
    if quantize and dataset is None:
        raise ConversionError(
            "int8 quantisation needs calibration images: --dataset FILE listing one image path per line "
            "(a few hundred frames from the target cameras)"
        )
    if head.type == "yolov8" and quantize:
        raise ConversionError(
            "int8 with the single-output yolov8 head destroys class scores (pixel boxes and probabilities "
            "share one quantisation scale); convert the nine-output export (head yolov8_dfl) instead"
        )
    mean, std = normalisation_for_rknn(package.input)
    out = Path(output) if output else package.root / f"model_{target}.rknn"
    return RknnBuildPlan(source, out, target, mean, std, quantize, Path(dataset) if dataset else None, head)


def rknn_toolkit_available() -> bool:
    return importlib.util.find_spec("rknn") is not None and importlib.util.find_spec("rknn.api") is not None


def build_rknn(plan: RknnBuildPlan, *, verbose: bool = False) -> Path:
    """Run ``config -> load_onnx -> build -> export_rknn``; every return code is checked."""
    if not rknn_toolkit_available():
        raise ConverterMissingError(INSTALL_HINT)
    rknn_api = importlib.import_module("rknn.api")
    rknn = rknn_api.RKNN(verbose=verbose)
    try:
        _check(rknn.config(mean_values=plan.mean_values, std_values=plan.std_values,
                           target_platform=plan.target_platform), "config", plan)
        _check(rknn.load_onnx(model=str(plan.onnx)), "load_onnx", plan)
        _check(rknn.build(do_quantization=plan.quantize, dataset=str(plan.dataset) if plan.dataset else None),
               "build", plan)
        plan.output.parent.mkdir(parents=True, exist_ok=True)
        _check(rknn.export_rknn(str(plan.output)), "export_rknn", plan)
    finally:
        rknn.release()
    return plan.output


def _check(ret: Any, step: str, plan: RknnBuildPlan) -> None:
    if ret != 0:
        raise ConversionError(
            f"rknn-toolkit2 {step} returned {ret} converting {plan.onnx} for {plan.target_platform}; "
            f"rerun with --verbose for the toolkit's log"
        )
