"""Exports that used to validate and then return wrong boxes are refused (or imported right),
and bad input gets a specific error naming the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models.decoders import decode
from coral_inference.models.detector import Detector
from coral_inference.models.errors import ManifestError, OutputMismatchError
from coral_inference.models.export_metadata import metadata_problems
from coral_inference.models.importing import (
    MissingClassesError,
    ModelImportError,
    UnknownLayoutError,
    import_model,
)
from coral_inference.models.package import HeadSpec, load_package, sha256_of
from coral_inference.models.validation import check_package
from tests.models.builders import constant_model

NAMES = "{0: 'person', 1: 'bicycle'}"


def _with_metadata(path: Path, **metadata: str) -> Path:
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _ultralytics(path: Path, outputs: list[np.ndarray], size: int = 64, **metadata: str) -> Path:
    constant_model(path, outputs, input_shape=(1, 3, size, size))
    base = {
        "author": "Ultralytics",
        "task": "detect",
        "names": NAMES,
        "imgsz": f"[{size}, {size}]",
        "stride": "32",
        "end2end": "False",
        "args": "{'nms': None, 'dynamic': False}",
    }
    return _with_metadata(path, **{**base, **metadata})


def _hand_package(root: Path, onnx_file: Path, classes: list[str], head: dict, size: int = 64):
    root.mkdir(parents=True, exist_ok=True)
    (root / "m.onnx").write_bytes(onnx_file.read_bytes())
    (root / "coral-model.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "hand",
                "classes": classes,
                "input": {"width": size, "height": size},
                "head": head,
                "artifacts": {
                    "onnxruntime": {"file": "m.onnx", "sha256": sha256_of(root / "m.onnx")}
                },
            }
        )
    )
    return load_package(root)


class _Context:
    """What check_package needs of a runtime context: the onnxruntime backend."""

    class backends:
        @staticmethod
        def get(name):
            return OnnxRuntimeBackend()


def _end2end_rows() -> np.ndarray:
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [10, 12, 40, 50, 0.9, 1]
    rows[0, 1] = [5, 5, 20, 20, 0.6, 0]
    return rows


# ------------------------------------------------------------------ silent failure 1: [1, 300, 6]


def test_nms_free_output_under_a_two_class_yolov8_head_is_refused_by_geometry(tmp_path):
    plain = tmp_path / "e2e.onnx"
    constant_model(plain, [_end2end_rows()], input_shape=(1, 3, 64, 64))  # no metadata at all
    package = _hand_package(tmp_path / "pkg", plain, ["a", "b"], {"type": "yolov8"})
    with pytest.raises(
        OutputMismatchError, match=r"300 candidates but a 64x64 input .* gives 84.*end-to-end"
    ):
        decode([_end2end_rows()], HeadSpec(type="yolov8"), 2, 0.25, input_size=(64, 64))
    checks = {c.name: c for c in check_package(package, _Context())}
    assert checks["run on onnxruntime"].status == "fail"
    assert "head.type: end2end" in checks["run on onnxruntime"].detail


def test_nms_free_ultralytics_export_is_imported_as_end2end_and_decodes_its_rows(tmp_path):
    path = _ultralytics(tmp_path / "v10.onnx", [_end2end_rows()], end2end="True")
    package = import_model(path, out=tmp_path / "pkg").package
    assert package.head.type == "end2end"
    detector = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    found = detector.detect(np.zeros((64, 64, 3), np.uint8), confidence=0.7)
    detector.close()
    assert found.class_id.tolist() == [1] and found.xyxy.round().tolist() == [[10, 12, 40, 50]]


def test_end2end_metadata_contradicting_a_yolov8_manifest_is_refused(tmp_path):
    path = _ultralytics(tmp_path / "v8nms.onnx", [_end2end_rows()], args="{'nms': True}")
    package = _hand_package(tmp_path / "pkg", path, ["person", "bicycle"], {"type": "yolov8"})
    problems = metadata_problems(
        package,
        {
            "author": "Ultralytics",
            "task": "detect",
            "names": NAMES,
            "imgsz": "[64, 64]",
            "end2end": "False",
            "args": "{'nms': True}",
        },
    )
    assert any("set head.type: end2end" in p for p in problems)


# --------------------------------------------------- silent failure 2: pose / OBB, edited classes


@pytest.mark.parametrize(("task", "extra", "family"), [("pose", 51, "keypoint"), ("obb", 1, "obb")])
def test_pose_or_obb_export_with_edited_classes_is_refused(tmp_path, task, extra, family):
    rows = 4 + 2 + extra
    path = _ultralytics(
        tmp_path / f"{task}.onnx",
        [np.zeros((1, rows, 84), np.float32)],
        task=task,
        kpt_shape="[17, 3]",
    )
    classes = ["person", "bicycle"] + [
        f"x{i}" for i in range(extra)
    ]  # the old advice: "check 'classes'"
    package = _hand_package(tmp_path / "pkg", path, classes, {"type": "yolov8"})
    checks = {c.name: c for c in check_package(package, _Context())}
    detail = checks["run on onnxruntime"].detail
    assert checks["run on onnxruntime"].status == "fail"
    assert f"Ultralytics {task!r} export" in detail and "re-import it" in detail
    import coral_inference

    context = coral_inference.init()
    try:
        with pytest.raises(ManifestError, match=f"Ultralytics {task!r} export"):
            context.get_model(str(package.root))
    finally:
        coral_inference.shutdown()


def test_a_shape_error_names_the_family_instead_of_suggesting_more_classes():
    with pytest.raises(
        OutputMismatchError, match=r"keypoint \(pose\) export with 17 keypoints"
    ) as info:
        decode(
            [np.zeros((1, 57, 8400), np.float32)],
            HeadSpec(type="yolov8"),
            2,
            0.25,
            input_size=(640, 640),
        )
    assert "check 'classes'" not in str(info.value)
    with pytest.raises(OutputMismatchError, match=r"oriented-box \(OBB\)"):
        decode(
            [np.zeros((1, 7, 8400), np.float32)],
            HeadSpec(type="yolov8"),
            2,
            0.25,
            input_size=(640, 640),
        )
    with pytest.raises(OutputMismatchError, match=r"instance-segmentation"):
        decode(
            [np.zeros((1, 38, 8400), np.float32), np.zeros((1, 32, 160, 160), np.float32)],
            HeadSpec(type="yolov8"),
            2,
            0.25,
            input_size=(640, 640),
        )


# ------------------------------------------------------ silent failure 3: normalised boxes


def _normalised_yolov8(size: int = 64) -> np.ndarray:
    out = np.zeros((1, 6, 84), np.float32)
    rng = np.random.default_rng(0)
    out[0, 0:2] = rng.uniform(
        0, 1, (2, 84)
    )  # centres in 0-1 units, like Ultralytics' int8 RKNN builds
    out[0, 2:4] = 0.1
    out[0, 4, 3] = 0.9
    out[0, :4, 3] = [0.5, 0.5, 0.25, 0.5]
    return out


def test_normalised_boxes_under_a_pixel_head_are_refused_with_the_fix():
    with pytest.raises(OutputMismatchError, match="set head.box_units: normalized"):
        decode([_normalised_yolov8()], HeadSpec(type="yolov8"), 2, 0.25, input_size=(64, 64))


def test_box_units_normalized_scales_to_input_pixels():
    found = decode(
        [_normalised_yolov8()],
        HeadSpec(type="yolov8", box_units="normalized"),
        2,
        0.5,
        input_size=(64, 64),
    )
    assert found.xyxy.round().tolist() == [[24, 16, 40, 48]]
    with pytest.raises(OutputMismatchError, match="set head.box_units: pixels"):
        pixels = _normalised_yolov8()
        pixels[0, :2] *= 64
        decode(
            [pixels], HeadSpec(type="yolov8", box_units="normalized"), 2, 0.5, input_size=(64, 64)
        )


# ------------------------------------------------------------------ other heads


def test_classic_yolov5_single_output_is_objectness_times_class(tmp_path):
    n = 3 * 84
    out = np.zeros((1, n, 7), np.float32)
    out[0, :, :4] = [5, 5, 2, 2]
    out[0, 10] = [32, 32, 20, 10, 0.8, 0.5, 1.0]  # score = 0.8 * 1.0, class 1
    path = tmp_path / "v5.onnx"
    constant_model(path, [out], input_shape=(1, 3, 64, 64))
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    package = import_model(path, out=tmp_path / "pkg", classes_file=tmp_path / "names.txt").package
    assert package.head.type == "yolov5_single"
    found = decode([out], package.head, 2, 0.5, input_size=(64, 64))
    assert found.class_ids.tolist() == [1] and found.scores.tolist() == pytest.approx([0.8])
    assert found.xyxy.tolist() == [[22, 27, 42, 37]]


def test_yolo26_raw_distance_dfl_head():
    head = HeadSpec(type="yolov8_dfl", reg_max=1, strides=[8, 16, 32])
    outputs = []
    for stride in (8, 16, 32):
        cells = 64 // stride
        box = np.ones((1, 4, cells, cells), np.float32)
        cls = np.zeros((1, 2, cells, cells), np.float32)
        if stride == 16:
            box[0, :, 1, 2] = [0.5, 1.0, 1.5, 2.0]
            cls[0, 1, 1, 2] = 0.7
        outputs += [box, cls, cls.max(axis=1, keepdims=True)]
    found = decode(outputs, head, 2, 0.5)
    # cell (x 2, y 1) centre (2.5, 1.5) * 16 = (40, 24); l t r b = (0.5, 1, 1.5, 2) * 16
    assert found.xyxy.tolist() == [[32, 8, 64, 56]] and found.class_ids.tolist() == [1]


# ------------------------------------------------------------------ bad input


def test_no_metadata_and_no_classes_names_the_flag(tmp_path):
    path = tmp_path / "zoo.onnx"
    constant_model(path, [np.zeros((1, 6, 84), np.float32)], input_shape=(1, 3, 64, 64))
    with pytest.raises(MissingClassesError, match="--classes FILE.*--numbered-classes"):
        import_model(path, out=tmp_path / "pkg")
    numbered = import_model(path, out=tmp_path / "pkg2", numbered_classes=True).package
    assert numbered.classes == ["class0", "class1"]


def test_unknown_layout_is_a_specific_error(tmp_path):
    path = tmp_path / "odd.onnx"
    constant_model(path, [np.zeros((1, 5, 7, 9), np.float32)], input_shape=(1, 3, 64, 64))
    with pytest.raises(UnknownLayoutError, match="fit no layout Coral recognises.*docs/models.md"):
        import_model(path, out=tmp_path / "pkg", numbered_classes=True)


def test_corrupt_file_is_a_specific_error(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelImportError, match="not a readable ONNX model.*export it again"):
        import_model(path, out=tmp_path / "pkg")


def test_rknn_without_its_onnx_names_the_flag(tmp_path):
    (tmp_path / "m.rknn").write_bytes(b"RKNN")
    with pytest.raises(ModelImportError, match="give --onnx FILE"):
        import_model(tmp_path / "m.rknn", out=tmp_path / "pkg")


def test_rknn_with_its_onnx_becomes_two_artifacts(tmp_path):
    path = _ultralytics(tmp_path / "m.onnx", [np.zeros((1, 6, 84), np.float32)])
    (tmp_path / "m.rknn").write_bytes(b"RKNN-fake")
    package = import_model(
        tmp_path / "m.rknn", onnx=path, out=tmp_path / "pkg", rknn_box_units="normalized"
    ).package
    assert set(package.backends) == {"onnxruntime", "rknn"}
    assert package.head_for("rknn").box_units == "normalized"
    assert package.input_for("rknn").layout == "NHWC" and package.input_for("rknn").dtype == "uint8"
    assert package.artifact("rknn").sha256 == sha256_of(tmp_path / "m.rknn")


def test_class_names_in_another_order_are_refused(tmp_path):
    path = _ultralytics(tmp_path / "m.onnx", [np.zeros((1, 6, 84), np.float32)])
    package = _hand_package(tmp_path / "pkg", path, ["bicycle", "person"], {"type": "yolov8"})
    checks = {c.name: c for c in check_package(package, _Context())}
    assert "in another order" in checks["run on onnxruntime"].detail
