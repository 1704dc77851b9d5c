"""NMS against a plain reference implementation written here, class-aware and agnostic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coral_inference.models.nms import box_iou, nms


def reference_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, threshold, class_ids=None, max_detections=None):
    """Textbook greedy NMS: visit boxes by descending score, keep one unless a kept box of its class overlaps it."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if max_detections is not None and len(kept) >= max_detections:
            break
        same_class = [k for k in kept if class_ids is None or class_ids[k] == class_ids[i]]
        if all(reference_iou(boxes[i], boxes[k]) <= threshold for k in same_class):
            kept.append(i)
    return kept


boxes_strategy = st.integers(min_value=0, max_value=60).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 120), st.floats(1, 120)),
            min_size=n,
            max_size=n,
        ),
        st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n, unique=True),
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(
    data=boxes_strategy,
    threshold=st.sampled_from([0.3, 0.45, 0.7]),
    agnostic=st.booleans(),
    max_detections=st.sampled_from([None, 5, 300]),
)
def test_nms_matches_the_reference(data, threshold, agnostic, max_detections):
    xywh, scores, class_ids = data
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in xywh], np.float32).reshape(-1, 4)
    scores_a = np.array(scores, np.float32)
    classes = None if agnostic else np.array(class_ids, np.int64)
    ours = nms(
        boxes, scores_a, threshold, class_ids=classes, max_detections=max_detections
    ).tolist()
    expected = reference_nms(
        boxes.tolist(),
        scores_a.tolist(),
        threshold,
        None if agnostic else class_ids,
        max_detections,
    )
    assert ours == expected


def test_class_aware_keeps_overlapping_boxes_of_different_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5, class_ids=np.array([0, 1, 0])).tolist() == [0, 1]
    assert nms(boxes, scores, 0.5).tolist() == [0]


def test_empty_and_degenerate_inputs():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    zero_area = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32)
    assert nms(zero_area, np.array([0.9, 0.8]), 0.5).tolist() == [0, 1]  # IoU of empty boxes is 0
    assert box_iou(np.array([0, 0, 0, 0.0]), zero_area).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("limit", [0, 1, 2])
def test_max_detections_caps_the_kept_boxes(limit):
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]], np.float32)
    assert (
        nms(boxes, np.array([0.3, 0.9, 0.5]), 0.5, max_detections=limit).tolist()
        == [1, 2, 0][:limit]
    )
