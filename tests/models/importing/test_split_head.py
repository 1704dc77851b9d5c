"""``--split-head``: the nine-output rewrite of stock Ultralytics detect exports decodes like
the single-output model (YOLOv8n, YOLO11n, YOLOv5nu; YOLO26n's raw distances too), and makes int8
conversion possible."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models.convert import convert_with_gate, plan_rknn_build
from coral_inference.models.detector import Detector
from coral_inference.models.importing import ModelImportError, import_model
from coral_inference.models.importing.split_head import split_head
from coral_inference.models.package import HeadSpec
from tests.models.importing.converter_standin import StandInConverter
from tests.models.importing.ultra_support import DETECT_FIXTURES, frames, recorded


@pytest.mark.parametrize(
    ("model", "reg_max"), [("yolov8n", 16), ("yolo11n", 16), ("yolov5nu", 16), ("yolo26n", 1)]
)
def test_split_model_decodes_like_the_single_output_model(tmp_path, model, reg_max):
    package = import_model(DETECT_FIXTURES / f"{model}.onnx", out=tmp_path / "pkg").package
    result = split_head(
        DETECT_FIXTURES / f"{model}.onnx",
        tmp_path / "split.onnx",
        (package.input.height, package.input.width),
    )
    assert (
        result.reg_max == reg_max
        and result.strides == [8, 16, 32]
        and len(result.output_names) == 9
    )
    backend = OnnxRuntimeBackend()
    whole = Detector(package, backend.prepare_session(package))
    split = Detector(
        package,
        backend.open_session(result.path, model="split"),
        head=HeadSpec(type="yolov8_dfl", reg_max=result.reg_max, strides=result.strides),
    )
    conf = recorded()["models"][f"{model}.onnx"]["conf"]
    total = 0
    try:
        for frame in frames():
            a, b = whole.detect(frame, confidence=conf), split.detect(frame, confidence=conf)
            order_a, order_b = np.lexsort(a.xyxy.T), np.lexsort(b.xyxy.T)
            assert a.class_id[order_a].tolist() == b.class_id[order_b].tolist()
            np.testing.assert_allclose(a.xyxy[order_a], b.xyxy[order_b], atol=0.01)
            np.testing.assert_allclose(a.confidence[order_a], b.confidence[order_b], atol=1e-5)
            total += len(a)
    finally:
        whole.close()
        split.close()
    assert total > 0


def test_split_head_import_makes_int8_conversion_possible(tmp_path):
    package = import_model(
        DETECT_FIXTURES / "yolov8n.onnx", out=tmp_path / "pkg", split=True
    ).package
    manifest = yaml.safe_load(package.manifest_path.read_text())
    assert manifest["convert"]["rknn"] == {
        "onnx": "model_split.onnx",
        "head": {"type": "yolov8_dfl", "reg_max": 16, "strides": [8, 16, 32]},
    }
    plan = plan_rknn_build(package, quantize=True, dataset=tmp_path)
    assert plan.onnx.name == "model_split.onnx" and plan.head.type == "yolov8_dfl"
    many = frames() * 4
    result = convert_with_gate(
        package,
        plan,
        frames=many,
        converter=StandInConverter(0.0),
        held_out_every=3,
        confidence=0.15,
    )
    assert result.report.passed and result.report.agreement == 1.0
    assert len(result.report.cosine) == 9
    calibration = (package.root / ".model_rk3588-calibration" / "dataset.txt").read_text().split()
    assert len(calibration) == len(many) - len(many[::3])


def test_split_head_refuses_an_end_to_end_export(tmp_path):
    with pytest.raises(ModelImportError, match="single-output detection exports"):
        import_model(DETECT_FIXTURES / "yolo26n-nmsfalse.onnx", out=tmp_path / "pkg", split=True)


def test_rknn_model_zoo_layout_imports_with_only_classes(tmp_path):
    """A nine-output export with no metadata (as rknn_model_zoo's exporter writes it)."""
    import onnx

    original = import_model(DETECT_FIXTURES / "yolo11n.onnx", out=tmp_path / "orig").package
    split = split_head(DETECT_FIXTURES / "yolo11n.onnx", tmp_path / "s.onnx", (320, 320))
    model = onnx.load(str(split.path))
    del model.metadata_props[:]
    zoo = tmp_path / "yolo11_zoo.onnx"
    onnx.save(model, str(zoo))
    names = tmp_path / "names.txt"
    names.write_text("circle\nsquare\ntriangle\n")
    with pytest.raises(ModelImportError, match="--classes FILE"):
        import_model(zoo, out=tmp_path / "nope")
    package = import_model(zoo, out=tmp_path / "zoo", classes_file=names).package
    assert package.head.type == "yolov8_dfl" and package.head.reg_max == 16
    assert package.classes == ["circle", "square", "triangle"]
    assert package.input.pad_value == 0  # rknn_model_zoo letterboxes with black
    # Same network, same decode: equal to the single-output model fed the same (black-padded) input.
    backend = OnnxRuntimeBackend()
    whole = Detector(
        original,
        backend.prepare_session(original),
        input_spec=original.input.model_copy(update={"pad_value": 0}),
    )
    zoo_detector = Detector(package, backend.prepare_session(package))
    conf = recorded()["models"]["yolo11n.onnx"]["conf"]
    try:
        for frame in frames():
            a, b = whole.detect(frame, confidence=conf), zoo_detector.detect(frame, confidence=conf)
            order_a, order_b = np.lexsort(a.xyxy.T), np.lexsort(b.xyxy.T)
            np.testing.assert_allclose(a.xyxy[order_a], b.xyxy[order_b], atol=0.01)
    finally:
        whole.close()
        zoo_detector.close()
