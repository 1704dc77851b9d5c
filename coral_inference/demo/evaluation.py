"""Accuracy against synthetic ground truth: box/mask IoU, mAP@IoU and keypoint PCK.

AP follows Pascal VOC 2010+: predictions of one class over all images are ranked by
score; each is a true positive when it overlaps a not-yet-matched ground-truth box of
its class by at least the IoU threshold; AP is the area under the precision envelope
(all-point interpolation). mAP is the mean over the classes that have ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
    boxes_only = (
        ((np.asarray(p[0]).reshape(-1, 4), p[1], p[2]) for p in predictions),
        ((np.asarray(t[0]).reshape(-1, 4), t[1]) for t in truths),
    )
    return _mean_average_precision(*boxes_only, num_classes, iou_threshold, box_iou)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every mask in ``a`` (n, H, W) with every mask in ``b`` (m, H, W): ``(n, m)``."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    a_flat = a.reshape(a.shape[0], int(np.prod(a.shape[1:]))).astype(np.float32)
    b_flat = b.reshape(b.shape[0], int(np.prod(b.shape[1:]))).astype(np.float32)
    inter = a_flat @ b_flat.T
    union = a_flat.sum(axis=1)[:, None] + b_flat.sum(axis=1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def mask_mean_average_precision(
    predictions: Iterable[Sequence[np.ndarray]],
    truths: Iterable[Sequence[np.ndarray]],
    num_classes: int,
    iou_threshold: float = 0.5,
) -> dict:
    """Mask mAP@``iou_threshold``: like ``mean_average_precision`` with masks for boxes.

    ``predictions`` hold ``(masks (n, H, W) bool, scores (n,), class_ids (n,))`` and
    ``truths`` ``(masks (m, H, W) bool, class_ids (m,))``, each image at its own size.
    """
    return _mean_average_precision(predictions, truths, num_classes, iou_threshold, mask_iou)


def _mean_average_precision(
    predictions: Iterable[Sequence[np.ndarray]],
    truths: Iterable[Sequence[np.ndarray]],
    num_classes: int,
    iou_threshold: float,
    overlap: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> dict:
    scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    hits: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    gt_count = np.zeros(num_classes, dtype=np.int64)
    for (p_geometry, p_scores, p_cls), (t_geometry, t_cls) in zip(predictions, truths, strict=True):
        p_geometry, p_scores = np.asarray(p_geometry), np.asarray(p_scores)
        p_cls = np.asarray(p_cls)
        t_geometry, t_cls = np.asarray(t_geometry), np.asarray(t_cls)
        gt_count += np.bincount(t_cls.astype(np.int64), minlength=num_classes)[:num_classes]
        for k in np.unique(p_cls).astype(np.int64):
            mine = p_cls == k
            order = np.argsort(-p_scores[mine], kind="stable")
            geometry, ranked = p_geometry[mine][order], p_scores[mine][order]
            ious = overlap(geometry, t_geometry[t_cls == k])
            matched = np.zeros(ious.shape[1], dtype=bool)
            hit = np.zeros(len(geometry), dtype=bool)
            for i in range(len(geometry)):  # greedy in score order: inherently sequential
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


def keypoint_pck(
    predictions: Iterable[Sequence[np.ndarray]],
    truths: Iterable[Sequence[np.ndarray]],
    alpha: float = 0.05,
    match_iou: float = 0.5,
) -> dict:
    """PCK@``alpha``: the share of visible ground-truth keypoints predicted within
    ``alpha`` times their object's box size (its longer side).

    ``predictions`` hold ``(xyxy (n, 4), scores (n,), class_ids (n,), keypoints (n, K, 2))``,
    ``truths`` ``(xyxy (m, 4), class_ids (m,), keypoints (m, K, 3) with x, y, visible)``.
    Each ground-truth object takes the best-scoring unmatched prediction of its class
    whose box overlaps it by ``match_iou``; the keypoints of an object no prediction
    matches count as misses. Returns ``{"pck", "correct", "visible", "unmatched_objects"}``.
    """
    correct = visible = unmatched = 0
    pairs = zip(predictions, truths, strict=True)
    for (p_xyxy, p_scores, p_cls, p_kps), (t_xyxy, t_cls, t_kps) in pairs:
        p_xyxy, p_kps = np.asarray(p_xyxy).reshape(-1, 4), np.asarray(p_kps)
        t_xyxy, t_kps = np.asarray(t_xyxy).reshape(-1, 4), np.asarray(t_kps)
        p_cls, t_cls, p_scores = np.asarray(p_cls), np.asarray(t_cls), np.asarray(p_scores)
        ious = np.where(t_cls[:, None] == p_cls[None, :], box_iou(t_xyxy, p_xyxy), 0.0)
        taken = np.zeros(len(p_xyxy), dtype=bool)
        order = np.argsort(-p_scores, kind="stable")
        for j in range(len(t_xyxy)):  # greedy assignment: inherently sequential
            seen = t_kps[j, :, 2] > 0
            visible += int(seen.sum())
            candidates = [i for i in order if not taken[i] and ious[j, i] >= match_iou]
            if not candidates:
                unmatched += 1
                continue
            i = candidates[0]
            taken[i] = True
            size = float(np.max(t_xyxy[j, 2:] - t_xyxy[j, :2]))
            error = np.linalg.norm(p_kps[i, :, :2] - t_kps[j, :, :2], axis=1)
            correct += int(np.sum(seen & (error <= alpha * size)))
    return {
        "pck": correct / visible if visible else 0.0,
        "correct": correct,
        "visible": visible,
        "unmatched_objects": unmatched,
    }
