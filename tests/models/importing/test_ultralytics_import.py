"""``models import`` on real Ultralytics exports (scripts/peers/ultralytics_detect_exports.py).

Each export is imported with no flag, run through the onnxruntime backend, and must give
Ultralytics' own recorded predictions (boxes within 1 px) and the same detections as a
package written by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models.detector import Detector
from coral_inference.models.importing import import_model
from coral_inference.models.package import load_package, sha256_of
from tests.models.importing.ultra_support import (
    DETECT_FIXTURES,
    assert_same_detections,
    frames,
    recorded,
)

MODELS = sorted(recorded()["models"])
EXPECTED_HEADS = {
    "yolov8n.onnx": "yolov8",
    "yolov8n-nmstrue.onnx": "end2end",
    "yolo11n.onnx": "yolov8",
    "yolov5nu.onnx": "yolov8",
    "yolov10n-nmsfalse.onnx": "end2end",
    "yolo26n.onnx": "yolov8",
    "yolo26n-nmsfalse.onnx": "end2end",
}


def _detector(package):
    return Detector(package, OnnxRuntimeBackend().prepare_session(package))


def test_every_detection_family_is_recorded():
    assert sorted(EXPECTED_HEADS) == MODELS


@pytest.mark.parametrize("model", MODELS)
def test_import_with_no_flag_matches_ultralytics_predictions(model, tmp_path):
    record = recorded()["models"][model]
    result = import_model(DETECT_FIXTURES / model, out=tmp_path / "pkg")
    package = result.package
    assert package.head.type == EXPECTED_HEADS[model]
    assert package.classes == ["circle", "square", "triangle"]
    assert [package.input.height, package.input.width] == record["imgsz"]
    manifest = yaml.safe_load(package.manifest_path.read_text())
    assert manifest["artifacts"]["onnxruntime"]["sha256"] == sha256_of(package.root / "model.onnx")
    detector = _detector(package)
    try:
        for i, (frame, expected) in enumerate(zip(frames(), record["predictions"])):
            got = detector.detect(
                frame, confidence=record["conf"], iou=record["iou"], max_detections=300
            )
            assert_same_detections(got, expected, f"{model} frame {i}")
    finally:
        detector.close()
    assert sum(len(p["xyxy"]) for p in record["predictions"]) > 0, (
        "the fixture must hold boxes to compare"
    )


@pytest.mark.parametrize("model", ["yolov8n.onnx", "yolo26n-nmsfalse.onnx"])
def test_imported_package_equals_a_hand_written_one(model, tmp_path):
    record = recorded()["models"][model]
    imported = import_model(DETECT_FIXTURES / model, out=tmp_path / "imported").package
    hand = tmp_path / "hand"
    hand.mkdir()
    (hand / "m.onnx").write_bytes((DETECT_FIXTURES / model).read_bytes())
    h, w = record["imgsz"]
    (hand / "coral-model.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "hand",
                "classes": ["circle", "square", "triangle"],
                "input": {"width": w, "height": h},
                "head": {"type": EXPECTED_HEADS[model]},
                "artifacts": {
                    "onnxruntime": {"file": "m.onnx", "sha256": sha256_of(hand / "m.onnx")}
                },
            }
        )
    )
    a, b = _detector(imported), _detector(load_package(hand))
    try:
        for frame in frames():
            da = a.detect(frame, confidence=record["conf"] / 2)
            db = b.detect(frame, confidence=record["conf"] / 2)
            np.testing.assert_array_equal(da.xyxy, db.xyxy)
            np.testing.assert_array_equal(da.class_id, db.class_id)
    finally:
        a.close()
        b.close()
