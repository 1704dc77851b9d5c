"""Greedy non-maximum suppression, class-aware or agnostic, in numpy.

Class-aware NMS runs as one agnostic pass over boxes shifted by ``class_id *
span`` (the offset trick torchvision's ``batched_nms`` uses): boxes of different
classes can never overlap, so no per-class loop is needed. The only Python loop
is over *kept* boxes, each step a vectorised IoU against all remaining ones.
"""

from __future__ import annotations

import numpy as np


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[4]`` xyxy box against ``[N, 4]`` boxes.

    >>> box_iou(np.array([0, 0, 2, 2.]), np.array([[1, 1, 3, 3.], [0, 0, 2, 2.]])).round(3).tolist()
    [0.143, 1.0]
    """
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    class_ids: np.ndarray | None = None,
    max_detections: int | None = None,
) -> np.ndarray:
    """Indices of the boxes to keep, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box (of the same
    class, unless ``class_ids`` is None) exceeds ``iou_threshold``.

    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    >>> nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5, class_ids=np.array([0, 0, 1])).tolist()
    [0, 2]
    """
    count = len(scores)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.asarray(xyxy, dtype=np.float64)
    if class_ids is not None:
        span = boxes.max() - boxes.min() + 1.0
        boxes = boxes + (np.asarray(class_ids, dtype=np.float64) * span)[:, None]
    order = np.argsort(-np.asarray(scores), kind="stable")
    limit = count if max_detections is None else max(0, int(max_detections))
    keep: list[int] = []
    remaining = order
    while remaining.size and len(keep) < limit:
        best = remaining[0]
        keep.append(int(best))
        rest = remaining[1:]
        if rest.size == 0:
            break
        remaining = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
