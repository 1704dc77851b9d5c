"""How far a converted model's answers drift from the ONNX model it came from.

``parity_report`` compares, frame by frame, the detections of a reference run (the
ONNX model on onnxruntime) with a candidate run (the RKNN build on the simulator or
a board): mAP@0.5 of the candidate with the reference's detections as ground
truth, the cosine similarity of each raw output tensor, and the detections that
differ (missed by the candidate, or extra). ``agreement`` is that mAP; the
conversion gate compares it with ``--gate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class FrameDetections:
    xyxy: np.ndarray  # [n, 4]
    scores: np.ndarray  # [n]
    class_ids: np.ndarray  # [n]

    @classmethod
    def of(cls, detections: Any) -> FrameDetections:
        return cls(
            np.asarray(detections.xyxy, np.float32).reshape(-1, 4),
            np.asarray(detections.confidence, np.float32).reshape(-1),
            np.asarray(detections.class_id, np.int64).reshape(-1),
        )


@dataclass
class ParityReport:
    frames: int
    agreement: float  # mAP@0.5 of the candidate against the reference
    per_class_ap: dict[str, float]
    cosine: list[float]  # per output tensor, mean over frames
    differences: list[dict[str, Any]] = field(default_factory=list)
    reference_detections: int = 0
    candidate_detections: int = 0
    gate: float | None = None
    passed: bool | None = None
    forced: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = inter / np.maximum(union, 1e-9)
    # Degenerate (zero-area) boxes overlap only themselves.
    same = np.all(np.abs(a[:, None, :] - b[None, :, :]) < 1e-3, axis=2)
    return np.where(union <= 1e-9, same.astype(np.float32), iou).astype(np.float32)


def _match(
    reference: FrameDetections, candidate: FrameDetections, cls: int, threshold: float
) -> tuple[list[tuple[float, bool]], int, list[int], list[int]]:
    """Greedy by score: (score, true positive) per candidate box of ``cls``; unmatched indices."""
    ref_idx = np.flatnonzero(reference.class_ids == cls)
    cand_idx = np.flatnonzero(candidate.class_ids == cls)
    cand_idx = cand_idx[np.argsort(-candidate.scores[cand_idx], kind="stable")]
    ious = iou_matrix(candidate.xyxy[cand_idx], reference.xyxy[ref_idx])
    taken = np.zeros(len(ref_idx), bool)
    results, extra = [], []
    for row, index in enumerate(cand_idx):
        best = -1
        if len(ref_idx):
            overlaps = np.where(taken, -1.0, ious[row])
            best = int(np.argmax(overlaps))
            if overlaps[best] < threshold:
                best = -1
        if best >= 0:
            taken[best] = True
        else:
            extra.append(int(index))
        results.append((float(candidate.scores[index]), best >= 0))
    missed = [int(i) for i, t in zip(ref_idx, taken) if not t]
    return results, len(ref_idx), missed, extra


def average_precision(scored: list[tuple[float, bool]], positives: int) -> float:
    """All-point interpolated AP (VOC 2010+)."""
    if positives == 0:
        return 1.0 if not scored else 0.0
    if not scored:
        return 0.0
    scored = sorted(scored, key=lambda s: -s[0])
    tp = np.cumsum([1.0 if t else 0.0 for _, t in scored])
    fp = np.cumsum([0.0 if t else 1.0 for _, t in scored])
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, 1e-9)
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[1.0], precision, [0.0]])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape:
        return float("nan")
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.dot(a, b) / norm)


def parity_report(
    reference: Sequence[FrameDetections],
    candidate: Sequence[FrameDetections],
    class_names: Sequence[str],
    reference_outputs: Sequence[Sequence[np.ndarray]] = (),
    candidate_outputs: Sequence[Sequence[np.ndarray]] = (),
    *,
    iou_threshold: float = 0.5,
    max_differences: int = 50,
) -> ParityReport:
    """mAP@0.5 of ``candidate`` against ``reference`` (ground truth), cosines, differing boxes."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference frames but {len(candidate)} candidate frames")
    classes = sorted({int(c) for f in list(reference) + list(candidate) for c in f.class_ids})
    scored: dict[int, list[tuple[float, bool]]] = {c: [] for c in classes}
    positives = dict.fromkeys(classes, 0)
    differences: list[dict[str, Any]] = []
    for frame, (ref, cand) in enumerate(zip(reference, candidate)):
        for cls in classes:
            results, count, missed, extra = _match(ref, cand, cls, iou_threshold)
            scored[cls] += results
            positives[cls] += count
            name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
            for i in missed:
                differences.append(
                    {
                        "frame": frame,
                        "kind": "missed by the conversion",
                        "class": name,
                        "score": round(float(ref.scores[i]), 4),
                        "xyxy": [round(float(v), 1) for v in ref.xyxy[i]],
                    }
                )
            for i in extra:
                differences.append(
                    {
                        "frame": frame,
                        "kind": "extra in the conversion",
                        "class": name,
                        "score": round(float(cand.scores[i]), 4),
                        "xyxy": [round(float(v), 1) for v in cand.xyxy[i]],
                    }
                )
    per_class = {
        (class_names[c] if 0 <= c < len(class_names) else str(c)): round(
            average_precision(scored[c], positives[c]), 4
        )
        for c in classes
    }
    agreement = float(np.mean(list(per_class.values()))) if per_class else 1.0
    cosines: list[float] = []
    if reference_outputs and candidate_outputs:
        per_output = len(reference_outputs[0])
        for k in range(per_output):
            values = [
                cosine(r[k], c[k])
                for r, c in zip(reference_outputs, candidate_outputs)
                if k < len(c)
            ]
            cosines.append(round(float(np.mean(values)), 6) if values else float("nan"))
    differences.sort(key=lambda d: -d["score"])
    return ParityReport(
        frames=len(reference),
        agreement=round(agreement, 4),
        per_class_ap=per_class,
        cosine=cosines,
        differences=differences[:max_differences],
        reference_detections=sum(len(f.scores) for f in reference),
        candidate_detections=sum(len(f.scores) for f in candidate),
    )
