"""``Detector``: filters, limits, batches and the shape of the ``sv.Detections`` it returns."""

from __future__ import annotations

import numpy as np
import pytest

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models import load_package
from coral_inference.models.detector import Detector
from tests.models.builders import constant_model, encode_yolov8, write_package

# Input pixels of a 64x64 model; a 128x128 frame doubles them.
BOXES = np.array([[4, 4, 20, 20], [5, 5, 21, 21], [30, 30, 60, 60], [40, 2, 60, 20]], np.float32)
CLASSES = np.array([0, 1, 1, 2])
SCORES = np.array([0.9, 0.8, 0.7, 0.3], np.float32)


@pytest.fixture
def detector(tmp_path):
    root = tmp_path / "pkg"
    constant_model(root / "model.onnx", [encode_yolov8(BOXES, CLASSES, SCORES, 3, 84)])
    write_package(
        root,
        classes=["person", "car", "bike"],
        input={"width": 64, "height": 64},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}},
    )
    package = load_package(root)
    detector = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    yield detector
    detector.close()


FRAME = np.zeros((128, 128, 3), np.uint8)


def test_detections_carry_frame_boxes_scores_and_class_names(detector):
    d = detector.detect(FRAME, confidence=0.25, iou=0.5)
    np.testing.assert_allclose(d.xyxy, BOXES * 2)
    np.testing.assert_allclose(d.confidence, SCORES)
    assert d.class_id.tolist() == [0, 1, 1, 2]
    assert d.data["class_name"].tolist() == ["person", "car", "car", "bike"]


def test_agnostic_nms_merges_overlapping_boxes_of_different_classes(detector):
    assert len(detector.detect(FRAME, iou=0.5, agnostic=True)) == 3
    assert len(detector.detect(FRAME, iou=0.5, agnostic=False)) == 4


def test_confidence_class_filter_and_max_detections(detector):
    assert len(detector.detect(FRAME, confidence=0.5)) == 3
    assert detector.detect(FRAME, class_filter=["car"]).data["class_name"].tolist() == [
        "car",
        "car",
    ]
    assert detector.detect(FRAME, class_filter=[2]).class_id.tolist() == [2]
    assert detector.detect(FRAME, max_detections=2).confidence.tolist() == pytest.approx([0.9, 0.8])
    assert len(detector.detect(FRAME, class_filter=[])) == 0


def test_unknown_class_in_the_filter_lists_the_model_classes(detector):
    with pytest.raises(
        ValueError,
        match=r"class_filter: 'truck' is not a class of model 'test-model'; its classes are: person, car, bike",
    ):
        detector.detect(FRAME, class_filter=["truck"])
    with pytest.raises(
        ValueError, match=r"class id 7 is out of range for model 'test-model' \(3 classes\)"
    ):
        detector.detect(FRAME, class_filter=[7])


def test_empty_result_has_typed_empty_arrays(detector):
    d = detector.detect(FRAME, confidence=0.99)
    assert len(d) == 0 and d.xyxy.shape == (0, 4) and d.data["class_name"].shape == (0,)


def test_batch_keeps_frame_order_and_stage_times_are_recorded(detector):
    frames = [np.zeros((64 * k, 64 * k, 3), np.uint8) for k in (1, 2, 3)]
    results = detector.detect_batch(frames)
    assert [r.xyxy[0].tolist() for r in results] == [(BOXES[0] * k).tolist() for k in (1, 2, 3)]
    _, times = detector.detect_timed(FRAME)
    assert times.candidates == 4 and times.total == pytest.approx(
        times.preprocess + times.inference + times.decode
    )
