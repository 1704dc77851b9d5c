"""Decoders: known frame boxes -> input pixels -> each head's raw layout -> decode -> frame boxes again."""

from __future__ import annotations

import numpy as np
import pytest

from coral_inference.models.decoders import decode, sigmoid
from coral_inference.models.errors import OutputMismatchError
from coral_inference.models.nms import nms
from coral_inference.models.package import YOLOV5_DEFAULT_ANCHORS, HeadSpec, InputSpec
from coral_inference.models.preprocess import resize_geometry
from tests.models.builders import encode_yolov5, encode_yolov8, encode_yolov8_dfl

FRAME_HW = (720, 1280)
# Frame pixels; sizes chosen to land on each of the three strides.
FRAME_BOXES = np.array(
    [[100, 200, 180, 260], [600, 300, 860, 520], [900, 60, 1260, 700], [20, 600, 60, 650]],
    np.float32,
)
CLASS_IDS = np.array([0, 2, 1, 2])
SCORES = np.array([0.95, 0.85, 0.75, 0.65], np.float32)


def _to_input(boxes, geometry):
    gain = np.array(
        [geometry.new_w / geometry.src_w, geometry.new_h / geometry.src_h] * 2, np.float32
    )
    offset = np.array([geometry.pad_left, geometry.pad_top] * 2, np.float32)
    return boxes * gain + offset


def _roundtrip(head: HeadSpec, resize: str):
    spec = InputSpec(width=640, height=640, resize=resize)
    geometry = resize_geometry(FRAME_HW, spec)
    boxes_in = _to_input(FRAME_BOXES, geometry)
    if head.type == "yolov8":
        outputs = [encode_yolov8(boxes_in, CLASS_IDS, SCORES, 3, 8400)]
    elif head.type == "yolov8_dfl":
        outputs = encode_yolov8_dfl(boxes_in, CLASS_IDS, SCORES, 3, (640, 640))
    else:
        outputs = encode_yolov5(boxes_in, CLASS_IDS, SCORES, 3, (640, 640), head.anchor_pairs)
    candidates = decode(outputs, head, 3, confidence=0.5)
    keep = nms(candidates.xyxy, candidates.scores, 0.5, candidates.class_ids)
    order = np.argsort(-candidates.scores[keep])
    keep = keep[order]
    return (
        geometry.to_source(candidates.xyxy[keep]),
        candidates.scores[keep],
        candidates.class_ids[keep],
    )


@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
@pytest.mark.parametrize(
    "head",
    [HeadSpec(type="yolov8"), HeadSpec(type="yolov8_dfl"), HeadSpec(type="yolov5")],
    ids=lambda h: h.type,
)
def test_known_boxes_survive_the_round_trip(head, resize):
    boxes, scores, class_ids = _roundtrip(head, resize)
    np.testing.assert_allclose(boxes, FRAME_BOXES, atol=0.5)
    np.testing.assert_allclose(scores, SCORES, rtol=1e-5)
    assert class_ids.tolist() == CLASS_IDS.tolist()


def test_confidence_threshold_and_allowed_classes_apply_before_boxes():
    out = encode_yolov8(
        np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32),
        np.array([0, 1]),
        np.array([0.9, 0.4]),
        2,
        100,
    )
    head = HeadSpec(type="yolov8")
    assert len(decode([out], head, 2, confidence=0.5)) == 1
    assert len(decode([out], head, 2, confidence=0.3)) == 2
    only_second = decode([out], head, 2, confidence=0.3, allowed_classes=np.array([1]))
    assert only_second.class_ids.tolist() == [1]


def test_allowed_classes_pick_the_best_allowed_class_not_the_best_overall():
    out = np.zeros((1, 7, 1), np.float32)
    out[0, :4, 0] = [10, 10, 4, 4]
    out[0, 4:, 0] = [0.9, 0.6, 0.1]
    result = decode(
        [out], HeadSpec(type="yolov8"), 3, confidence=0.5, allowed_classes=np.array([1, 2])
    )
    assert result.class_ids.tolist() == [1] and result.scores.tolist() == [pytest.approx(0.6)]


def test_raw_logits_are_activated_when_the_model_has_no_sigmoid():
    out = np.zeros((1, 6, 1), np.float32)
    out[0, :4, 0] = [10, 10, 4, 4]
    out[0, 4:, 0] = [2.0, -1.0]
    result = decode([out], HeadSpec(type="yolov8", sigmoid_in_model=False), 2, confidence=0.5)
    assert result.scores.tolist() == [pytest.approx(float(sigmoid(np.float32(2.0))))]


def test_transposed_single_output_is_accepted():
    out = encode_yolov8(
        np.array([[0, 0, 10, 10]], np.float32), np.array([0]), np.array([0.9]), 2, 50
    )
    a = decode([out], HeadSpec(type="yolov8"), 2, 0.5)
    b = decode([out.transpose(0, 2, 1)], HeadSpec(type="yolov8"), 2, 0.5)
    np.testing.assert_allclose(a.xyxy, b.xyxy)


def test_score_sum_prefilter_never_drops_a_box_the_class_scores_keep():
    boxes = np.array([[100, 100, 140, 150]], np.float32)
    outputs = encode_yolov8_dfl(boxes, np.array([1]), np.array([0.6]), 3, (640, 640))
    for i in range(2, 9, 3):
        outputs[i] = np.ones_like(outputs[i])  # sum says "everything passes": same result
    with_sum = decode(outputs, HeadSpec(type="yolov8_dfl"), 3, 0.5)
    without_sum = decode(
        [o for i, o in enumerate(outputs) if i % 3 != 2], HeadSpec(type="yolov8_dfl"), 3, 0.5
    )
    np.testing.assert_allclose(with_sum.xyxy, boxes, atol=1e-3)
    np.testing.assert_allclose(without_sum.xyxy, with_sum.xyxy)


@pytest.mark.parametrize(
    ("head", "outputs", "message"),
    [
        (
            HeadSpec(type="yolov8"),
            [np.zeros((1, 9, 10))],
            r"head yolov8 with 3 classes expects an output \[1, 7, N\], got \[1, 9, 10\]",
        ),
        (
            HeadSpec(type="yolov8"),
            [np.zeros((1, 7, 10))] * 2,
            r"head yolov8 expects one output \[1, 7, N\], the model gave 2",
        ),
        (
            HeadSpec(type="yolov8_dfl"),
            [np.zeros((1, 7, 10))],
            r"head yolov8_dfl with strides \[8, 16, 32\] expects 9 outputs",
        ),
        (
            HeadSpec(type="yolov5"),
            [np.zeros((1, 24, 8, 8))] * 3,
            r"anchor head of stride 8: expected \[1, 24, H, W\]",
        ),
    ],
)
def test_outputs_that_do_not_match_the_head_are_explained(head, outputs, message):
    if head.type == "yolov5":
        outputs = [np.zeros((1, 30, 8, 8))] * 3  # 3 * (5 + 3) = 24 expected
    with pytest.raises(OutputMismatchError, match=message):
        decode(outputs, head, 3, 0.5)


def test_yolov5_default_anchors_are_three_pairs_per_stride():
    assert [len(row) // 2 for row in YOLOV5_DEFAULT_ANCHORS] == [3, 3, 3]
    with pytest.raises(ValueError, match="anchors has 2 rows but strides has 3 entries"):
        HeadSpec(type="yolov5", anchors=[[1, 2], [3, 4]])
