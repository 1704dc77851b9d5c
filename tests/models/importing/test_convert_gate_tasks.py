"""The accuracy gate of ``models convert`` for every task beyond boxes: the bundled demo models
(segmentation, keypoints, classification) through a converter stand-in. A stand-in that damages
exactly what one task metric measures is refused by that metric with the report; an identity
stand-in is accepted and joins a copy of the package with its task metrics."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from coral_inference.demo.tasks import classification_still, pose_still, task_still
from coral_inference.models.convert import (
    ConversionError,
    GateRefusedError,
    convert_with_gate,
    plan_rknn_build,
)
from coral_inference.models.package import ZOO_DIR, load_package
from coral_inference.models.parity import (
    FrameDetections,
    difference_text,
    gates_for,
    parity_report,
)
from tests.models.importing.converter_standin import (
    StandInConverter,
    blur_prototypes,
    move_keypoints,
    swap_classes,
)

FRAMES = 6


def _frames(task: str, count: int = FRAMES) -> list[np.ndarray]:
    if task == "cls":
        return [classification_still(100 + i, 480, 360).image for i in range(count)]
    still = pose_still if task == "pose" else task_still
    out = []
    for i in range(count):
        scene, index = still(200 + i, 640, 480)
        out.append(scene.render(index).image)
    return out


def _package(tmp_path, name: str):
    root = tmp_path / name
    shutil.copytree(ZOO_DIR / name, root)
    return load_package(root)


CASES = {
    # package, frames, damage, the metric that must fail, the metric that must still hold
    "seg": ("coral-demo-seg", blur_prototypes, "mask_map50", "box_map50"),
    "pose": ("coral-demo-pose", move_keypoints, "keypoint_pck", "box_map50"),
    "cls": ("coral-demo-cls", swap_classes, "top1_agreement", "top5_overlap"),
}


@pytest.mark.parametrize("task", sorted(CASES))
def test_a_build_that_damages_the_task_output_is_refused_by_that_metric(tmp_path, task):
    name, damage, failing, holding = CASES[task]
    package = _package(tmp_path, name)
    with pytest.raises(GateRefusedError) as info:
        convert_with_gate(
            package,
            plan_rknn_build(package),
            frames=_frames(task),
            converter=StandInConverter(damage=damage),
            held_out_every=1,
        )
    report = info.value.report
    assert report.failed == [failing] and not report.passed
    assert report.metrics[failing] < report.gates[failing]
    assert report.metrics[holding] >= report.gates.get(holding, 0.95)
    message = str(info.value)
    assert f"({failing}) {report.metrics[failing]:.3f} is under its gate" in message
    assert f"--gate {failing}=VALUE" in message and "--force" in message
    assert report.differences and all(difference_text(d) for d in report.differences)
    assert "rknn" not in load_package(package.root).backends
    assert info.value.report_path.is_file()
    assert (package.root / "model_rk3588.rknn.rejected").is_file()


@pytest.mark.parametrize(
    ("task", "name"),
    [
        ("seg", "coral-demo-seg"),
        ("pose", "coral-demo-pose"),
        ("cls", "coral-demo-cls"),
        ("cls", "coral-demo-cls-multilabel"),
    ],
)
def test_a_faithful_build_passes_every_task_metric_and_joins_the_package(tmp_path, task, name):
    package = _package(tmp_path, name)
    result = convert_with_gate(
        package,
        plan_rknn_build(package),
        frames=_frames(task),
        converter=StandInConverter(0.0),
        held_out_every=1,
    )
    report = result.report
    assert report.passed and not report.failed and not report.differences
    assert set(report.gates) <= set(report.metrics)
    assert all(report.metrics[m] == 1.0 for m in report.gates)
    if task != "cls":
        assert report.reference_detections > 0  # the demo model found shapes to compare
    conversion = load_package(package.root).manifest.metadata["conversions"]["rknn"]
    assert conversion["task"] == report.task and conversion["metrics"] == report.metrics
    assert conversion["passed"] is True


def test_a_multi_label_build_is_gated_on_its_label_sets(tmp_path):
    package = _package(tmp_path, "coral-demo-cls-multilabel")
    with pytest.raises(GateRefusedError, match=r"\(label_agreement\)"):
        convert_with_gate(
            package,
            plan_rknn_build(package),
            frames=_frames("cls"),
            converter=StandInConverter(damage=swap_classes),
            held_out_every=1,
        )


def test_gate_thresholds_per_task_and_overrides():
    assert gates_for("instance-segmentation") == {"mask_map50": 0.90, "box_map50": 0.95}
    assert gates_for("keypoint-detection", 0.5) == {"keypoint_pck": 0.5, "box_map50": 0.5}
    assert gates_for("classification", {"top5_overlap": 0.8}) == {
        "top1_agreement": 0.95,
        "top5_overlap": 0.8,
    }
    assert gates_for("classification", multi_label=True)["label_agreement"] == 0.95
    with pytest.raises(ValueError, match="keypoint-detection conversions are measured by"):
        gates_for("keypoint-detection", {"mask_map50": 0.5})


def test_the_gate_option_takes_a_number_or_named_thresholds():
    from coral_inference.cli.models_cmd import _parse_gates

    assert _parse_gates(None) is None and _parse_gates(["0.8"]) == 0.8
    assert _parse_gates(["mask_map50=0.85", "box_map50=0.9"]) == {
        "mask_map50": 0.85,
        "box_map50": 0.9,
    }
    for bad, reason in [(["1.5"], "between 0 and 1"), (["x=high"], "METRIC=NUMBER")]:
        with pytest.raises(ValueError, match=reason):
            _parse_gates(bad)
    with pytest.raises(ValueError, match="name the metric"):
        _parse_gates(["0.9", "mask_map50=0.8"])


def test_an_unknown_gate_metric_is_refused_before_building(tmp_path):
    package = _package(tmp_path, "coral-demo-cls")
    stand_in = StandInConverter(0.0)
    with pytest.raises(ConversionError, match="box_map50=0.9: classification conversions"):
        convert_with_gate(
            package,
            plan_rknn_build(package),
            frames=_frames("cls"),
            converter=stand_in,
            gate={"box_map50": 0.9},
        )
    assert not stand_in.plans


def _obb(xywhr, scores, classes) -> FrameDetections:
    from coral_inference.models.tasks.obb import corners

    boxes = np.asarray(xywhr, np.float32).reshape(-1, 5)
    polygons = corners(boxes)
    xyxy = np.concatenate([polygons.min(axis=1), polygons.max(axis=1)], axis=1)
    return FrameDetections(
        xyxy, np.asarray(scores, np.float32), np.asarray(classes, np.int64), xywhr=boxes
    )


def test_oriented_boxes_are_compared_by_rotated_overlap():
    reference = [_obb([[100, 100, 80, 20, 0.0], [300, 200, 60, 60, 0.3]], [0.9, 0.8], [0, 1])]
    same = parity_report(reference, reference, ["a", "b"], task="obb")
    assert same.metric == "obb_map50" and same.metrics["obb_map50"] == 1.0
    # the long thin box turned by 90 degrees: its enclosing box moves, its rotated overlap collapses
    turned = [_obb([[100, 100, 80, 20, 1.5708], [300, 200, 60, 60, 0.3]], [0.9, 0.8], [0, 1])]
    report = parity_report(reference, turned, ["a", "b"], task="obb")
    report.apply_gate(gates_for("obb"))
    assert report.metrics["obb_map50"] == 0.5 and report.failed == ["obb_map50"]
    assert {d["matched_by"] for d in report.differences} == {"obb"}


def test_the_toolkit_rewrite_of_spatial_reduce_mean_keeps_the_numbers():
    """rknn-toolkit2 2.3.2 cannot fold ReduceMean(H, W, keepdims=0) (the demo classifiers' pooling);
    the build script's rewrite to GlobalAveragePool + Flatten must compute the same scores."""
    import onnx
    import onnxruntime

    from coral_inference.models.convert import _RKNN_REWRITE

    namespace: dict = {}
    exec(_RKNN_REWRITE, namespace)  # the exact source the toolkit's child process runs
    path = ZOO_DIR / "coral-demo-cls" / "model_cls.onnx"
    model = onnx.load(str(path))
    assert namespace["rewrite_for_rknn"](model) == 2
    assert "ReduceMean" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    before = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    after = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    name = before.get_inputs()[0].name
    np.testing.assert_allclose(
        after.run(None, {name: x})[0], before.run(None, {name: x})[0], atol=1e-6
    )


@pytest.mark.optional  # needs rknn-toolkit2's own environment (coral-runtime models toolkit install)
@pytest.mark.slow  # a real toolkit build and simulator run per model (~1-2 min each)
@pytest.mark.parametrize(
    ("task", "name", "int8"),
    [
        ("seg", "coral-demo-seg", True),
        ("pose", "coral-demo-pose", False),  # int8 keypoints fall under the PCK gate (README)
        ("cls", "coral-demo-cls", True),
    ],
)
def test_the_real_simulator_passes_the_gate_for_the_demo_task_models(tmp_path, task, name, int8):
    from coral_inference.models.convert import ToolkitConverter, toolkit_python

    if toolkit_python() is None:
        pytest.skip(
            "no rknn-toolkit2 environment (coral-runtime models toolkit install builds one)"
        )
    package = _package(tmp_path, name)
    frames = _frames(task, 24)  # 18 calibrate, 6 are held out for the check
    plan = plan_rknn_build(package, quantize=int8, dataset=tmp_path if int8 else None)
    result = convert_with_gate(
        package, plan, frames=frames, converter=ToolkitConverter(), held_out_every=4
    )
    report = result.report
    assert report.passed and result.added, report.summary()
    assert report.notes[0] == "converter: rknn-toolkit2 simulator"
