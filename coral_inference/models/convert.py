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

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coral_inference.backends.base import BackendError
from coral_inference.models.package import HeadSpec, InputSpec, ModelPackage

INSTALL_HINT = (
    "rknn-toolkit2 is not installed. It is Rockchip's converter (Linux x86-64 or aarch64, Python "
    "3.8-3.12) and pins old torch/numpy/onnx releases, so it gets an environment of its own: run "
    "bash scripts/rknn-toolkit-env (it does pip install rknn-toolkit2==2.3.2 into "
    "~/.cache/coral/rknn-toolkit2-2.3.2; Coral finds it there, or set CORAL_RKNN_TOOLKIT_PYTHON "
    "to another environment's python) and run this command again"
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


# Runs inside the toolkit's own environment, which has rknn-toolkit2 but none of Coral's
# dependencies: plain Python, a JSON plan in, a JSON result out.
_BUILD_SCRIPT = """
import json, sys
from rknn.api import RKNN
plan = json.loads(sys.argv[1])
rknn = RKNN(verbose=plan["verbose"])
steps = [
    ("config", lambda: rknn.config(mean_values=plan["mean_values"], std_values=plan["std_values"],
                                   target_platform=plan["target_platform"])),
    ("load_onnx", lambda: rknn.load_onnx(model=plan["onnx"])),
    ("build", lambda: rknn.build(do_quantization=plan["quantize"], dataset=plan["dataset"])),
    ("export_rknn", lambda: rknn.export_rknn(plan["output"])),
]
try:
    for name, step in steps:
        ret = step()
        if ret != 0:
            print(json.dumps({"failed": name, "ret": ret}))
            sys.exit(3)
finally:
    rknn.release()
print(json.dumps({"failed": None}))
"""


def toolkit_python() -> Path | None:
    """Python of a separate rknn-toolkit2 environment: ``$CORAL_RKNN_TOOLKIT_PYTHON`` or the newest
    one ``scripts/rknn-toolkit-env`` built."""
    explicit = os.environ.get("CORAL_RKNN_TOOLKIT_PYTHON")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("CORAL_CACHE_DIR", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "coral"))
    built = sorted(p for p in cache.glob("rknn-toolkit2-*") if (p / ".coral-complete").exists())
    return built[-1] / "bin" / "python" if built else None


def rknn_toolkit_available() -> bool:
    """rknn-toolkit2 importable here, or a separate toolkit environment to run it in."""
    return importlib.util.find_spec("rknn") is not None or toolkit_python() is not None


def build_rknn(plan: RknnBuildPlan, *, verbose: bool = False) -> Path:
    """Run ``config -> load_onnx -> build -> export_rknn``; every return code is checked."""
    request = {
        "verbose": verbose, "mean_values": plan.mean_values, "std_values": plan.std_values,
        "target_platform": plan.target_platform, "onnx": str(plan.onnx), "quantize": plan.quantize,
        "dataset": str(plan.dataset) if plan.dataset else None, "output": str(plan.output),
    }
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("rknn") is not None:
        command = [sys.executable, "-c", _BUILD_SCRIPT, json.dumps(request)]
    elif (python := toolkit_python()) is not None:
        command = [str(python), "-c", _BUILD_SCRIPT, json.dumps(request)]
    else:
        raise ConverterMissingError(INSTALL_HINT)
    # A child process either way: the toolkit's native code and logging stay out of this one.
    done = subprocess.run(command, capture_output=not verbose, text=True)
    result = _last_json(done.stdout or "")
    if done.returncode != 0 or result.get("failed"):
        step, ret = result.get("failed") or "startup", result.get("ret", done.returncode)
        detail = (done.stderr or "").strip().splitlines()[-1:] if done.stderr else []
        raise ConversionError(
            f"rknn-toolkit2 {step} returned {ret} converting {plan.onnx} for {plan.target_platform}"
            f"{': ' + detail[0] if detail else ''}; rerun with --verbose for the toolkit's log"
        )
    return plan.output


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}
