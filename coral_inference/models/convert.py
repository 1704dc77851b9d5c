"""ONNX -> RKNN with Rockchip's ``rknn-toolkit2`` (``coral-runtime models convert``).

The converter bakes the package's normalisation into the ``.rknn``
(``rknn.config(mean_values, std_values)``), so the NPU is fed NHWC uint8 RGB
frames as they come out of the letterbox. Coral's ``(x * scale - mean) / std`` is
rknn's ``(x - mean_values) / std_values`` with ``mean_values = mean / scale`` and
``std_values = std / scale``.

``rknn-toolkit2`` pins old torch/numpy/onnx releases; it belongs in its own
environment (``scripts/rknn-toolkit-env``), not in the one running Coral.

``convert_with_gate`` is the checked path (``coral-runtime models convert``): int8
calibration from the user's own frames, then a parity report — the ONNX model on
onnxruntime against the RKNN build on the toolkit's simulator over held-out frames,
both decoded by the blocks' own path, with the ONNX results as ground truth: box mAP@0.5
for detection, mask mAP@0.5 for segmentation, keypoint PCK for pose, rotated-box mAP for
OBB, top-1/top-5 agreement for classification (``models/parity.py``), plus the cosine
similarity of every raw output and the results that differ. The ``.rknn`` joins the
package only when every gated metric of its task reaches its threshold (``force``
overrides, and says so in the manifest).
The converter is pluggable (``CORAL_RKNN_CONVERTER=module:factory``): the toolkit by
default, a stand-in in tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from coral_inference.backends.base import BackendError
from coral_inference.models.package import (
    ZOO_DIR,
    HeadSpec,
    InputOverride,
    InputSpec,
    ModelPackage,
    head_task,
    sha256_of,
)
from coral_inference.models.parity import METRIC_LABELS, FrameDetections, gates_for, parity_report

INSTALL_HINT = (
    "rknn-toolkit2 is not installed. It is Rockchip's converter (Linux x86-64 or aarch64, Python "
    "3.8-3.12) and pins old torch/numpy/onnx releases, so it gets an environment of its own: run "
    "coral-runtime models toolkit install (it does pip install rknn-toolkit2==2.3.2 into "
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
            "file": str(self.output.relative_to(package_root))
            if self.output.is_relative_to(package_root)
            else str(self.output),
            "sha256": sha256,
            "target_platform": self.target_platform,
            "input": {"layout": "NHWC", "dtype": "uint8"},
            "head": self.head.model_dump(exclude_defaults=True),
        }

    def manifest_snippet(self, package_root: Path, sha256: str) -> str:
        return yaml.safe_dump(
            {"artifacts": {"rknn": self.manifest_entry(package_root, sha256)}}, sort_keys=False
        )


def normalisation_for_rknn(spec: InputSpec) -> tuple[list[list[float]], list[list[float]]]:
    """``rknn.config`` mean/std values equivalent to the package's input normalisation."""
    mean = [round(m / spec.scale, 6) for m in spec.mean]
    std = [round(s / spec.scale, 6) for s in spec.std]
    return [mean], [std]


# Single-output task heads and the split layout an int8 NPU build needs instead (None: no split layout).
_SPLIT_LAYOUT_FOR = {
    "yolov8_seg": "yolov8_seg_dfl",
    "yolov8_pose": "yolov8_pose_dfl",
    "yolov8_obb": None,
}


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
    if source is None or not source.is_file():
        raise ConversionError(f"{source}: ONNX file to convert does not exist")
    target = target_platform or (conversion.target_platform if conversion else "rk3588")
    quantize = quantize if quantize is not None else bool(conversion and conversion.quantize)
    if quantize and dataset is None:
        raise ConversionError(
            "int8 quantisation needs calibration frames from the target cameras: --calibration DIR|VIDEO "
            "(a folder of images, a video or a Coral recording; a few hundred frames), or --dataset FILE "
            "listing one image path per line"
        )
    if head.type in _SPLIT_LAYOUT_FOR and quantize:  # seg/pose/obb single outputs share the problem
        split = _SPLIT_LAYOUT_FOR[head.type]
        raise ConversionError(
            f"int8 with the single-output {head.type} head destroys class scores (pixel boxes and "
            f"probabilities share one quantisation scale); "
            + (
                f"convert the rknn_model_zoo split layout (head {split}) instead, or convert without --int8"
                if split
                else "this head has no split layout in Coral yet: convert without --int8 (fp16)"
            )
        )
    if head.type == "yolov8" and quantize:
        raise ConversionError(
            "int8 with the single-output yolov8 head destroys class scores (pixel boxes and probabilities "
            "share one quantisation scale); convert the nine-output layout instead: re-import the export "
            "with coral-runtime models import MODEL.onnx --split-head (ONNX graph surgery, no airockchip fork "
            "needed) and convert that package"
        )
    mean, std = normalisation_for_rknn(package.input)
    out = Path(output) if output else package.root / f"model_{target}.rknn"
    return RknnBuildPlan(
        source, out, target, mean, std, quantize, Path(dataset) if dataset else None, head
    )


# Runs in the toolkit's environment (its pinned ``onnx``), before ``load_onnx``. rknn-toolkit2 2.3.2's
# constant folding runs ``ReduceMean(axes=[2, 3], keepdims=0)`` of a 4-D tensor with the wrong rank
# and the build dies ("Invalid rank for input ... Got: 4 Expected: 2"; airockchip/rknn-toolkit2
# issues 411 and 527). ``GlobalAveragePool`` + ``Flatten(axis=1)`` computes the same numbers and
# converts; the parity check still compares the build with the unmodified ONNX.
_RKNN_REWRITE = """
def rewrite_for_rknn(model):
    from onnx import helper, shape_inference
    graph = shape_inference.infer_shapes(model).graph
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
    nodes, count = [], 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes")
        if (node.op_type == "ReduceMean" and len(node.input) == 1 and attrs.get("keepdims", 1) == 0
                and axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]
                and ranks.get(node.input[0]) == 4):
            pooled = node.output[0] + "_coral_pool"
            nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], [pooled],
                                          name=node.name + "_coral_pool"))
            nodes.append(helper.make_node("Flatten", [pooled], [node.output[0]],
                                          name=node.name + "_coral_flatten", axis=1))
            count += 1
        else:
            nodes.append(node)
    if count:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return count
"""

# Runs inside the toolkit's own environment, which has rknn-toolkit2 but none of Coral's
# dependencies: plain Python, a JSON plan in, a JSON result out.
_BUILD_SCRIPT = (
    _RKNN_REWRITE
    + """
import json, os, sys, tempfile
from rknn.api import RKNN
plan = json.loads(sys.argv[1])
source, rewrites = plan["onnx"], 0
import onnx
model = onnx.load(source)
rewrites = rewrite_for_rknn(model)
if rewrites:
    source = os.path.join(tempfile.mkdtemp(prefix="coral-rknn-onnx-"), "model.onnx")
    onnx.save(model, source)
rknn = RKNN(verbose=plan["verbose"])
steps = [
    ("config", lambda: rknn.config(mean_values=plan["mean_values"], std_values=plan["std_values"],
                                   target_platform=plan["target_platform"])),
    ("load_onnx", lambda: rknn.load_onnx(model=source)),
    ("build", lambda: rknn.build(do_quantization=plan["quantize"], dataset=plan["dataset"])),
    ("export_rknn", lambda: rknn.export_rknn(plan["output"])),
]
try:
    for name, step in steps:
        ret = step()
        if ret != 0:
            print(json.dumps({"failed": name, "ret": ret}))
            sys.exit(3)
    if plan.get("eval_inputs"):
        import numpy as np
        if rknn.init_runtime() != 0:  # no target: the simulator, on the model just built
            print(json.dumps({"failed": "init_runtime (simulator)", "ret": -1}))
            sys.exit(3)
        for i, path in enumerate(plan["eval_inputs"]):
            outputs = rknn.inference(inputs=[np.load(path)], data_format="nhwc")
            if outputs is None:
                print(json.dumps({"failed": "inference (simulator)", "ret": -1}))
                sys.exit(3)
            for k, out in enumerate(outputs):
                np.save(f"{plan['eval_dir']}/out_{i}_{k}.npy", np.asarray(out))
finally:
    rknn.release()
print(json.dumps({"failed": None, "rewrites": rewrites}))
"""
)


def toolkit_python() -> Path | None:
    """Python of a separate rknn-toolkit2 environment: ``$CORAL_RKNN_TOOLKIT_PYTHON`` or the newest
    one ``scripts/rknn-toolkit-env`` built."""
    explicit = os.environ.get("CORAL_RKNN_TOOLKIT_PYTHON")
    if explicit:
        return Path(explicit)
    cache = Path(
        os.environ.get(
            "CORAL_CACHE_DIR",
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "coral",
        )
    )
    built = sorted(p for p in cache.glob("rknn-toolkit2-*") if (p / ".coral-complete").exists())
    return built[-1] / "bin" / "python" if built else None


def rknn_toolkit_available() -> bool:
    """rknn-toolkit2 importable here, or a separate toolkit environment to run it in."""
    return importlib.util.find_spec("rknn") is not None or toolkit_python() is not None


def build_rknn(
    plan: RknnBuildPlan,
    *,
    verbose: bool = False,
    eval_inputs: list[str] | None = None,
    eval_dir: str | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Run ``config -> load_onnx -> build -> export_rknn`` (then the simulator on ``eval_inputs``);
    ``info`` receives the child's result (``rewrites``: graph rewrites made for the toolkit)."""
    request = {
        "verbose": verbose,
        "mean_values": plan.mean_values,
        "std_values": plan.std_values,
        "target_platform": plan.target_platform,
        "onnx": str(plan.onnx),
        "quantize": plan.quantize,
        "dataset": str(plan.dataset) if plan.dataset else None,
        "output": str(plan.output),
        "eval_inputs": eval_inputs or [],
        "eval_dir": eval_dir,
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
    if info is not None:
        info.update(result)
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


# --------------------------------------------------------------------------- the checked conversion


class GateRefusedError(ConversionError):
    """The converted model's parity with its ONNX source is under the gate; ``report`` says how far."""

    def __init__(self, message: str, report: Any, report_path: Path):
        super().__init__(message)
        self.report = report
        self.report_path = report_path


@dataclass
class BuildResult:
    """A built ``.rknn`` and the raw outputs it gave on the held-out inputs (one list per frame)."""

    rknn: Path
    outputs: list[list[Any]]


class Converter(Protocol):
    name: str

    def build(
        self, plan: RknnBuildPlan, eval_inputs: list[Any], *, verbose: bool = False
    ) -> BuildResult: ...


class ToolkitConverter:
    """rknn-toolkit2: build, export, then the simulator on the held-out inputs (one child process)."""

    name = "rknn-toolkit2 simulator"

    def __init__(self) -> None:
        self.notes: list[str] = []

    def build(
        self, plan: RknnBuildPlan, eval_inputs: list[Any], *, verbose: bool = False
    ) -> BuildResult:

        with tempfile.TemporaryDirectory(prefix="coral-parity-") as tmp:
            paths = []
            for i, tensor in enumerate(eval_inputs):
                path = Path(tmp) / f"in_{i}.npy"
                np.save(path, tensor)
                paths.append(str(path))
            info: dict[str, Any] = {}
            build_rknn(plan, verbose=verbose, eval_inputs=paths, eval_dir=tmp, info=info)
            if info.get("rewrites"):
                self.notes.append(
                    f"{info['rewrites']} ReduceMean(H, W) rewritten as GlobalAveragePool + Flatten "
                    f"for rknn-toolkit2 (same numbers; its constant folding fails on the former)"
                )
            outputs = []
            for i in range(len(paths)):
                files = sorted(
                    Path(tmp).glob(f"out_{i}_*.npy"), key=lambda p: int(p.stem.rsplit("_", 1)[1])
                )
                outputs.append([np.load(f) for f in files])
        return BuildResult(plan.output, outputs)


def converter_from_env() -> Converter:
    """``$CORAL_RKNN_CONVERTER`` (``module:factory``, e.g. a stand-in in tests), else the toolkit."""
    spec = os.environ.get("CORAL_RKNN_CONVERTER")
    if not spec:
        return ToolkitConverter()
    module_name, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attr or "converter")
    return factory()


VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m4v"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def load_frames(
    source: Path, limit: int = 300, progress: Callable[[int, int], None] | None = None
) -> list[Any]:
    """BGR frames from a folder of images (sorted) or a video (spread over its length)."""
    # heavy: OpenCV (cv2)
    import cv2

    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConversionError(
                f"--calibration {source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it"
            )
        step = max(1, len(files) // limit)
        frames = []
        chosen = files[::step][:limit]
        for n, path in enumerate(chosen):
            image = cv2.imread(str(path))
            if image is not None:
                frames.append(image)
            if progress:
                progress(n + 1, len(chosen))
        return frames
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(source))
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        step = max(1, total // limit) if total else 1
        frames, index = [], 0
        while len(frames) < limit:
            ok, image = capture.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(image)
                if progress:
                    progress(len(frames), min(limit, total // step if total else limit))
            index += 1
        capture.release()
        if not frames:
            raise ConversionError(
                f"--calibration {source}: no frames could be decoded from the video"
            )
        return frames
    raise ConversionError(
        f"--calibration {source}: give a folder of images, or a video file ({', '.join(sorted(VIDEO_SUFFIXES))}), "
        f"e.g. a Coral recording"
    )


def split_frames(frames: list[Any], held_out_every: int = 5) -> tuple[list[Any], list[Any]]:
    """(calibration, held-out): every ``held_out_every``-th frame is kept out of calibration."""
    held = frames[::held_out_every]
    calibration = [f for i, f in enumerate(frames) if i % held_out_every]
    return (calibration or frames), held


@dataclass
class GateResult:
    report: Any
    report_path: Path
    rknn: Path
    added: bool  # False: outside the package or a bundled one; the entry is printed instead


def convert_with_gate(
    package: ModelPackage,
    plan: RknnBuildPlan,
    *,
    frames: list[Any],
    gate: float | Mapping[str, float] | None = None,
    force: bool = False,
    converter: Converter | None = None,
    confidence: float = 0.25,
    held_out_every: int = 5,
    verbose: bool = False,
    notes: list[str] | None = None,
) -> GateResult:
    """Calibrate (int8), build, compare with the ONNX model on held-out frames, add the artifact if it
    passes. ``gate``: None for the task's default thresholds (``parity.DEFAULT_GATES``), a number for
    every gated metric, or ``{metric: threshold}`` for some."""
    # heavy: OpenCV (cv2)
    import cv2

    # heavy: imports OpenCV (through models.preprocess)
    from coral_inference.backends.onnxruntime import OnnxRuntimeBackend

    # heavy: models.detector imports supervision (~3 s with its scipy, PIL)
    from coral_inference.models.detector import Detector

    # heavy: imports OpenCV (cv2)
    from coral_inference.models.preprocess import preprocess_image

    # heavy: postprocess imports supervision (~3 s with its scipy, PIL)
    from coral_inference.models.tasks.postprocess import classify_outputs

    task = head_task(plan.head.type)
    multi_label = bool(package.manifest.multi_label)
    try:
        gates = gates_for(task, gate, multi_label=multi_label)
    except ValueError as exc:
        raise ConversionError(str(exc)) from None
    converter = converter or converter_from_env()
    calibration, held_out = split_frames(frames, held_out_every)
    if not held_out:
        raise ConversionError(
            "no frames to compare the conversion on; give --calibration DIR|VIDEO"
        )
    if plan.quantize:
        work = plan.output.parent / f".{plan.output.stem}-calibration"
        work.mkdir(parents=True, exist_ok=True)
        bgr_spec = package.input.model_copy(
            update={"layout": "NHWC", "dtype": "uint8", "color": "BGR"}
        )
        lines = []
        for i, frame in enumerate(calibration):
            tensor, _ = preprocess_image(frame, bgr_spec)
            path = work / f"calib_{i:04d}.png"
            cv2.imwrite(
                str(path), tensor[0]
            )  # letterboxed like at run time; the toolkit reads it as RGB
            lines.append(str(path))
        dataset = work / "dataset.txt"
        dataset.write_text("\n".join(lines) + "\n")
        plan = RknnBuildPlan(
            plan.onnx,
            plan.output,
            plan.target_platform,
            plan.mean_values,
            plan.std_values,
            True,
            dataset,
            plan.head,
        )
    rknn_input = package.input_for(
        "rknn", InputOverride.model_validate({"layout": "NHWC", "dtype": "uint8"})
    )
    prepared = [preprocess_image(frame, rknn_input) for frame in held_out]
    built = converter.build(plan, [tensor for tensor, _ in prepared], verbose=verbose)
    backend = OnnxRuntimeBackend()
    session = backend.open_session(
        plan.onnx,
        model=f"{package.name} (parity reference)",
        input_spec=package.input,
        head=plan.head,
    )
    try:
        # The blocks' decoding path on both sides: Detector.postprocess, classify_outputs.
        reference_detector = Detector(package, session, input_spec=package.input, head=plan.head)
        candidate_detector = Detector(package, session, input_spec=rknn_input, head=plan.head)
        reference, candidate, ref_outputs, cand_outputs = [], [], [], []
        for frame, (_, geometry), outputs in zip(held_out, prepared, built.outputs):
            tensor, ref_geometry = reference_detector.prepare(frame)
            ref_raw = reference_detector.infer(tensor)
            ref_outputs.append(ref_raw)
            cand_raw = _shaped_like(outputs, ref_raw)
            cand_outputs.append(cand_raw)
            if task == "classification":
                reference.append(
                    FrameDetections.of_classification(
                        classify_outputs(package, plan.head, package.input, ref_raw)
                    )
                )
                candidate.append(
                    FrameDetections.of_classification(
                        classify_outputs(package, plan.head, rknn_input, cand_raw)
                    )
                )
                continue
            reference.append(
                FrameDetections.of(
                    reference_detector.postprocess(ref_raw, ref_geometry, confidence=confidence)
                )
            )
            candidate.append(
                FrameDetections.of(
                    candidate_detector.postprocess(cand_raw, geometry, confidence=confidence)
                )
            )
    finally:
        session.close()
    report = parity_report(
        reference,
        candidate,
        package.classes,
        ref_outputs,
        cand_outputs,
        task=task,
        multi_label=multi_label,
    )
    report.apply_gate(gates)
    report.forced = bool(force and not report.passed)
    report.notes = [
        f"converter: {converter.name}",
        f"{len(calibration)} calibration frames" if plan.quantize else "no quantisation (fp16)",
        *([] if task == "classification" else [f"confidence {confidence}"]),
        *getattr(converter, "notes", []),
        *(notes or []),
    ]
    report_path = plan.output.with_name(plan.output.name + ".parity.json")
    summary = {
        "target_platform": plan.target_platform,
        "quantize": plan.quantize,
        "onnx": str(plan.onnx),
        "rknn": str(plan.output),
        **report.as_dict(),
    }
    report_path.write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
    if not report.passed and not force:
        rejected = built.rknn.with_name(built.rknn.name + ".rejected")
        built.rknn.replace(rejected)
        raise GateRefusedError(
            refusal_message(report, plan, rejected, report_path), report, report_path
        )
    added = can_add_to(package, built.rknn)
    if added:
        add_rknn_artifact(package, plan, built.rknn, report_path, summary)
    return GateResult(report, report_path, built.rknn, added)


def _shaped_like(outputs: list[Any], reference: list[Any]) -> list[Any]:
    """The converted model's outputs in the reference's shapes where only the shape differs (the
    runtime may drop or add unit dimensions); anything else is left for the decoder to refuse."""

    shaped = []
    for k, out in enumerate(outputs):
        out = np.asarray(out)
        if k < len(reference) and out.shape != reference[k].shape and out.size == reference[k].size:
            out = out.reshape(reference[k].shape)
        shaped.append(out)
    return shaped


def refusal_message(report: Any, plan: RknnBuildPlan, rejected: Path, report_path: Path) -> str:
    """Which gated metrics fell short, by how much, and what to do about it."""

    shortfalls = "; ".join(
        f"{METRIC_LABELS.get(m, m)} ({m}) {report.metrics.get(m, 0.0):.3f} is under its gate "
        f"{report.gates[m]:g}"
        for m in report.failed
    )
    first = report.failed[0] if report.failed else report.metric
    if plan.quantize:
        fix = (
            "calibrate with more frames from the target cameras (--calibration with more images, "
            "--frames), or convert without --int8 (fp16); Coral cannot keep the sensitive layers in "
            "fp16 (rknn-toolkit2 hybrid quantisation) yet"
        )
    else:
        fix = (
            "this is an fp16 build, so a gap this large points at the export rather than the "
            "quantisation: compare the per-output cosine in the report and check the package's "
            "head and input normalisation"
        )
    return (
        f"the {plan.target_platform} {'int8' if plan.quantize else 'fp16'} build ({report.task}) "
        f"does not match the ONNX model on {report.frames} held-out frames: "
        f"{shortfalls}. Not added to the package (kept as {rejected.name}; report {report_path}). "
        f"Fix: {fix}; or lower the gate (--gate {first}=VALUE), or add --force to use it anyway"
    )


def can_add_to(package: ModelPackage, rknn: Path) -> bool:
    """A build joins the manifest only when it lies inside the package and the package is not one
    shipped inside Coral (those are read-only: the caller prints the entry to add instead)."""

    root = package.root.resolve()
    inside = root in rknn.resolve().parents
    bundled = ZOO_DIR.resolve() in root.parents or root == ZOO_DIR.resolve()
    return inside and not bundled


def add_rknn_artifact(
    package: ModelPackage,
    plan: RknnBuildPlan,
    rknn: Path,
    report_path: Path,
    summary: dict[str, Any],
) -> None:
    """Write ``artifacts.rknn`` and ``metadata.conversions.rknn`` (the report, and whether forced)."""

    data = yaml.safe_load(package.manifest_path.read_text(encoding="utf-8"))
    data.setdefault("artifacts", {})["rknn"] = plan.manifest_entry(package.root, sha256_of(rknn))
    conversions = data.setdefault("metadata", {}).setdefault("conversions", {})
    conversions["rknn"] = {
        "report": report_path.name if report_path.parent == package.root else str(report_path),
        "task": summary["task"],
        "metric": summary["metric"],
        "agreement": summary["agreement"],
        "metrics": summary["metrics"],
        "gates": summary["gates"],
        "gate": summary["gate"],
        "passed": summary["passed"],
        "forced": summary["forced"],
        "quantize": summary["quantize"],
        "target_platform": summary["target_platform"],
        "cosine": summary["cosine"],
        "frames": summary["frames"],
    }
    package.manifest_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
