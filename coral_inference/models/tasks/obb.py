"""Oriented boxes: corner polygons, probabilistic IoU and matrix (Fast-)NMS, all vectorised.

Boxes are ``xywhr``: centre, width, height, angle in radians. Overlap is the
probabilistic IoU of the boxes' Gaussian approximations (Bhattacharyya distance,
arXiv:2106.06072), the measure Ultralytics' rotated NMS uses, and suppression is
the one-shot matrix form (a box goes when any higher-scoring box overlaps it more
than the threshold), so there is no loop at all.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def corners(xywhr: np.ndarray) -> np.ndarray:
    """``(n, 5)`` -> ``(n, 4, 2)`` corner points, in the order Ultralytics and supervision use."""
    b = np.asarray(xywhr, dtype=np.float32).reshape(-1, 5)
    centre = b[:, None, :2]
    cos, sin = np.cos(b[:, 4]), np.sin(b[:, 4])
    half_w = np.stack([b[:, 2] / 2 * cos, b[:, 2] / 2 * sin], axis=1)[:, None]
    half_h = np.stack([-b[:, 3] / 2 * sin, b[:, 3] / 2 * cos], axis=1)[:, None]
    signs_w = np.array([1, 1, -1, -1], np.float32)[None, :, None]
    signs_h = np.array([1, -1, -1, 1], np.float32)[None, :, None]
    return (centre + signs_w * half_w + signs_h * half_h).astype(np.float32)


def _covariance(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, c = b[..., 2] ** 2 / 12, b[..., 3] ** 2 / 12
    cos, sin = np.cos(b[..., 4]), np.sin(b[..., 4])
    return a * cos**2 + c * sin**2, a * sin**2 + c * cos**2, (a - c) * cos * sin


def probiou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """``(n, m)`` probabilistic IoU between two sets of ``xywhr`` boxes (1 = identical)."""
    b1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 5)
    b2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 5)
    return _pairwise(b1[:, None, :], b2[None, :, :])


def _gaussians(b: np.ndarray) -> np.ndarray:
    """``(..., 6)``: centre x, y, covariance a, b, c and its clipped determinant per box."""
    a, bb, c = _covariance(b)
    return np.stack([b[..., 0], b[..., 1], a, bb, c, np.clip(a * bb - c**2, 0, None)], axis=-1)


def _pairwise(b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Probabilistic IoU of ``b1[..., :]`` and ``b2[..., :]`` (broadcast), last axis xywhr."""
    return _pairwise_gaussians(_gaussians(b1), _gaussians(b2))


def _pairwise_gaussians(g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """Probabilistic IoU from :func:`_gaussians` rows (broadcast)."""
    dx = g1[..., 0] - g2[..., 0]
    dy = g1[..., 1] - g2[..., 1]
    sa, sb, sc = g1[..., 2] + g2[..., 2], g1[..., 3] + g2[..., 3], g1[..., 4] + g2[..., 4]
    det = sa * sb - sc**2
    t1 = (sa * dy**2 + sb * dx**2) / (det + _EPS) * 0.25
    t2 = (sc * (-dx) * dy) / (det + _EPS) * 0.5
    t3 = np.log(det / (4 * np.sqrt(g1[..., 5] * g2[..., 5]) + _EPS) + _EPS) * 0.5
    distance = np.clip(t1 + t2 + t3, _EPS, 100.0)
    return 1 - np.sqrt(1 - np.exp(-distance) + _EPS)


# Candidates compared per block of the (score-ordered) suppression matrix: bounds memory.
_BLOCK = 512


def rotated_nms(
    xywhr: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    class_ids: np.ndarray | None = None,
    max_detections: int | None = None,
    class_offset: float = 7680.0,
) -> np.ndarray:
    """Indices kept by matrix NMS on probabilistic IoU, highest score first.

    Classes are kept apart by shifting centres by ``class_id * class_offset``. Only pairs
    whose centres are closer than twice the sum of their half-diagonals can overlap enough
    to suppress (their Gaussians' overlap is ~0 beyond), so the IoU is computed for those
    pairs alone, in blocks of rows of the suppression matrix.

    >>> boxes = np.array([[10, 10, 8, 4, 0.3], [10.5, 10, 8, 4, 0.3], [40, 40, 8, 4, 0]])
    >>> rotated_nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist()
    [0, 2]
    """
    count = len(scores)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.asarray(xywhr, dtype=np.float64).reshape(-1, 5).copy()
    if class_ids is not None:
        boxes[:, :2] += (np.asarray(class_ids, dtype=np.float64) * class_offset)[:, None]
    order = np.argsort(-np.asarray(scores), kind="stable")
    ordered = boxes[order]
    reach = np.hypot(ordered[:, 2], ordered[:, 3])  # 2 x half-diagonal
    gaussians = _gaussians(ordered)  # once per box, gathered per pair
    suppressed = np.zeros(count, dtype=bool)
    for start in range(0, count, _BLOCK):  # blocks of candidates, not detections
        stop = min(start + _BLOCK, count)
        later = slice(start + 1, count)  # only lower scores can be suppressed by this block
        dx = ordered[start:stop, None, 0] - ordered[None, later, 0]
        dy = ordered[start:stop, None, 1] - ordered[None, later, 1]
        near = dx * dx + dy * dy < (reach[start:stop, None] + reach[None, later]) ** 2
        near &= np.arange(count - start - 1)[None, :] >= np.arange(stop - start)[:, None]
        rows, columns = np.nonzero(near)
        if rows.size:
            columns += start + 1
            overlap = _pairwise_gaussians(gaussians[rows + start], gaussians[columns])
            suppressed[columns[overlap > iou_threshold]] = True
    keep = order[~suppressed]
    return keep[:max_detections] if max_detections is not None else keep
