"""Detection accuracy against synthetic ground truth: IoU matrices and mAP@IoU.

AP follows Pascal VOC 2010+: predictions of one class over all images are ranked by
score; each is a true positive when it overlaps a not-yet-matched ground-truth box of
its class by at least the IoU threshold; AP is the area under the precision envelope
(all-point interpolation). mAP is the mean over the classes that have ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np


class Prediction(NamedTuple):
    xyxy: np.ndarray  # (n, 4)
    scores: np.ndarray  # (n,)
    class_ids: np.ndarray  # (n,)


class Truth(NamedTuple):
    xyxy: np.ndarray  # (m, 4)
    class_ids: np.ndarray  # (m,)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4): ``(n, m)``.

    >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]])).round(3)
    array([[0.333]])
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone precision envelope of a ranked recall/precision curve."""
    r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    envelope = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * envelope[1:]))


def mean_average_precision(
    predictions: Iterable[Prediction | Sequence[np.ndarray]],
    truths: Iterable[Truth | Sequence[np.ndarray]],
    num_classes: int,
    iou_threshold: float = 0.5,
) -> dict:
    """mAP@``iou_threshold`` over aligned per-image predictions and truths.

    Returns ``{"map": float, "per_class": [AP or None (no ground truth), ...],
    "ground_truth": [count per class]}``.
    """
    scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    hits: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    gt_count = np.zeros(num_classes, dtype=np.int64)
    for (p_xyxy, p_scores, p_cls), (t_xyxy, t_cls) in zip(predictions, truths, strict=True):
        p_xyxy, p_scores, p_cls = np.asarray(p_xyxy).reshape(-1, 4), np.asarray(p_scores), np.asarray(p_cls)
        t_xyxy, t_cls = np.asarray(t_xyxy).reshape(-1, 4), np.asarray(t_cls)
        gt_count += np.bincount(t_cls.astype(np.int64), minlength=num_classes)[:num_classes]
        for k in np.unique(p_cls).astype(np.int64):
            mine = p_cls == k
            order = np.argsort(-p_scores[mine], kind="stable")
            boxes, ranked = p_xyxy[mine][order], p_scores[mine][order]
            ious = box_iou(boxes, t_xyxy[t_cls == k])
            matched = np.zeros(ious.shape[1], dtype=bool)
            hit = np.zeros(len(boxes), dtype=bool)
            for i in range(len(boxes)):  # greedy in score order: inherently sequential
                candidates = np.where(matched, -1.0, ious[i])
                if candidates.size and candidates.max() >= iou_threshold:
                    matched[int(candidates.argmax())] = True
                    hit[i] = True
            scores[k].append(ranked)
            hits[k].append(hit)
    per_class: list[float | None] = []
    for k in range(num_classes):
        if gt_count[k] == 0:
            per_class.append(None)
            continue
        if not scores[k]:
            per_class.append(0.0)
            continue
        all_scores, all_hits = np.concatenate(scores[k]), np.concatenate(hits[k])
        order = np.argsort(-all_scores, kind="stable")
        true_pos = np.cumsum(all_hits[order])
        recall = true_pos / gt_count[k]
        precision = true_pos / np.arange(1, len(order) + 1)
        per_class.append(average_precision(recall, precision))
    present = [ap for ap in per_class if ap is not None]
    return {
        "map": float(np.mean(present)) if present else 0.0,
        "per_class": per_class,
        "ground_truth": gt_count.tolist(),
    }
