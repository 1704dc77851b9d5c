"""How far a converted model's answers drift from the ONNX model it came from.

``parity_report`` compares, frame by frame, the *decoded* results of a reference run
(the ONNX model on onnxruntime) with a candidate run (the RKNN build on the simulator
or a board), both decoded by the path the blocks use (``Detector.postprocess``,
``classify_outputs``). The reference's results are the ground truth. Which numbers
are computed depends on the task the head decodes:

========================  ==================================================================
task                      metrics (``ParityReport.metrics``)
========================  ==================================================================
object-detection          ``box_map50``: box mAP@0.5
instance-segmentation     ``mask_map50``: mask mAP@0.5 (mask IoU), ``box_map50``
keypoint-detection        ``keypoint_pck``: PCK@0.05 on box-matched instances, ``box_map50``
obb                       ``obb_map50``: rotated-box mAP@0.5 (ProbIoU, as Ultralytics' OBB
                          validation matches), ``box_map50`` of the enclosing boxes
classification            ``top1_agreement``, ``top5_overlap``, ``label_agreement``
                          (multi-label: the classes at >= 0.5 are the same set)
========================  ==================================================================

The cosine similarity of each raw output tensor rides along as extra information;
``differences`` lists what changed (instances missed or added, keypoints moved,
top-1 classes swapped). ``apply_gate`` compares the task's gated metrics with their
thresholds (``DEFAULT_GATES``; ``--gate`` overrides).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from coral_inference.models.tasks.obb import probiou

# Gated metrics per task and their default thresholds (the first one is the task's headline).
DEFAULT_GATES: dict[str, dict[str, float]] = {
    "object-detection": {"box_map50": 0.95},
    "instance-segmentation": {"mask_map50": 0.90, "box_map50": 0.95},
    "keypoint-detection": {"keypoint_pck": 0.90, "box_map50": 0.95},
    "obb": {"obb_map50": 0.95},
    "classification": {"top1_agreement": 0.95, "top5_overlap": 0.90},
    "classification-multi-label": {"label_agreement": 0.95, "top5_overlap": 0.90},
}

METRIC_LABELS = {
    "box_map50": "box mAP@0.5",
    "mask_map50": "mask mAP@0.5",
    "keypoint_pck": "keypoint PCK@0.05",
    "obb_map50": "rotated-box mAP@0.5",
    "top1_agreement": "top-1 agreement",
    "top5_overlap": "top-5 overlap",
    "label_agreement": "label-set agreement",
}

# PCK: a keypoint agrees when within this share of its reference box's longer side ...
PCK_ALPHA = 0.05
# ... and it counts only where the reference sees it (Ultralytics' visibility threshold).
KEYPOINT_VISIBLE = 0.5
MULTI_LABEL_THRESHOLD = 0.5


def gate_key(task: str, multi_label: bool = False) -> str:
    """The ``DEFAULT_GATES`` key of a task (multi-label classification has its own)."""
    if task == "classification" and multi_label:
        return "classification-multi-label"
    return task if task in DEFAULT_GATES else "object-detection"


def gates_for(
    task: str, gate: float | Mapping[str, float] | None = None, *, multi_label: bool = False
) -> dict[str, float]:
    """The thresholds a conversion of ``task`` must reach: the defaults, every one replaced by a
    number ``gate``, or those named in a mapping ``gate`` (a metric the task does not compute is an
    error naming the ones it does)."""
    defaults = dict(DEFAULT_GATES[gate_key(task, multi_label)])
    if gate is None:
        return defaults
    if isinstance(gate, (int, float)):
        return dict.fromkeys(defaults, float(gate))
    known = set(_TASK_METRICS[gate_key(task, multi_label)])
    for metric, value in gate.items():
        if metric not in known:
            raise ValueError(
                f"--gate {metric}={value}: {task} conversions are measured by "
                f"{', '.join(sorted(known))}"
            )
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"--gate {metric}={value}: a threshold lies between 0 and 1")
    return {**defaults, **{m: float(v) for m, v in gate.items()}}


_TASK_METRICS: dict[str, tuple[str, ...]] = {
    "object-detection": ("box_map50",),
    "instance-segmentation": ("mask_map50", "box_map50"),
    "keypoint-detection": ("keypoint_pck", "box_map50"),
    "obb": ("obb_map50", "box_map50"),
    "classification": ("top1_agreement", "top5_overlap", "label_agreement"),
    "classification-multi-label": ("label_agreement", "top1_agreement", "top5_overlap"),
}


@dataclass
class FrameDetections:
    """One frame's decoded result; the task payload fields are set for the tasks that have them."""

    xyxy: np.ndarray  # [n, 4]
    scores: np.ndarray  # [n]
    class_ids: np.ndarray  # [n]
    masks: np.ndarray | None = None  # [n, H, W] bool (segmentation)
    keypoints: np.ndarray | None = None  # [n, K, 2] (keypoints)
    keypoint_confidence: np.ndarray | None = None  # [n, K]
    xywhr: np.ndarray | None = None  # [n, 5] (oriented boxes)
    class_scores: np.ndarray | None = None  # [nc] (classification)

    @classmethod
    def of(cls, detections: Any) -> FrameDetections:
        """From ``sv.Detections`` as ``Detector.postprocess`` returns them (any box task)."""
        data = getattr(detections, "data", None) or {}
        mask = getattr(detections, "mask", None)
        return cls(
            np.asarray(detections.xyxy, np.float32).reshape(-1, 4),
            np.asarray(detections.confidence, np.float32).reshape(-1),
            np.asarray(detections.class_id, np.int64).reshape(-1),
            masks=None if mask is None else np.asarray(mask, bool),
            keypoints=None if "keypoints_xy" not in data else np.asarray(data["keypoints_xy"]),
            keypoint_confidence=None
            if "keypoints_confidence" not in data
            else np.asarray(data["keypoints_confidence"]),
            xywhr=None if "xywhr" not in data else np.asarray(data["xywhr"], np.float32),
        )

    @classmethod
    def of_classification(cls, result: Any) -> FrameDetections:
        """From a ``ClassificationResult``: no boxes, the class scores."""
        empty = np.zeros((0, 4), np.float32)
        return cls(
            empty,
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            class_scores=np.asarray(result.confidences, np.float32).reshape(-1),
        )


@dataclass
class ParityReport:
    frames: int
    agreement: float  # the task's headline metric (``metric``), e.g. box mAP@0.5 for detection
    per_class_ap: dict[str, float]  # of the headline matching (boxes, masks or rotated boxes)
    cosine: list[float]  # per output tensor, mean over frames
    differences: list[dict[str, Any]] = field(default_factory=list)
    reference_detections: int = 0
    candidate_detections: int = 0
    gate: float | None = None  # threshold of the headline metric
    passed: bool | None = None
    forced: bool = False
    notes: list[str] = field(default_factory=list)
    task: str = "object-detection"
    metric: str = "box_map50"
    metrics: dict[str, float] = field(default_factory=dict)
    gates: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # gated metrics under their threshold

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply_gate(self, gates: Mapping[str, float]) -> bool:
        """Compare every gated metric with its threshold; ``passed`` only when all reach it."""
        self.gates = {m: float(v) for m, v in gates.items()}
        self.failed = [m for m, v in self.gates.items() if self.metrics.get(m, 0.0) < v]
        self.gate = self.gates.get(self.metric)
        self.passed = not self.failed
        return self.passed

    def summary(self) -> str:
        """``mask mAP@0.5 0.981 (gate 0.9), box mAP@0.5 0.995 (gate 0.95)`` — gated metrics first."""
        names = list(self.gates) + [m for m in self.metrics if m not in self.gates]
        parts = []
        for name in names:
            if name not in self.metrics:
                continue
            value = self.metrics[name]
            shown = f"{value:.3f}" if isinstance(value, float) and value <= 1.0 else f"{value:g}"
            label = f"{METRIC_LABELS.get(name, name)} {shown}"
            if name in self.gates:
                mark = "" if self.metrics[name] >= self.gates[name] else " FAIL"
                label += f" (gate {self.gates[name]:g}{mark})"
            parts.append(label)
        return ", ".join(parts)


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


def mask_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, m)`` IoU of boolean masks ``a`` (n, H, W) and ``b`` (m, H, W); two empty masks: 1."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    fa = np.asarray(a, bool).reshape(len(a), -1).astype(np.float32)
    fb = np.asarray(b, bool).reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(axis=1)[:, None] + fb.sum(axis=1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1.0), 1.0).astype(np.float32)


def _probiou(a: np.ndarray, b: np.ndarray) -> np.ndarray:

    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    return probiou(a, b).astype(np.float32)


@dataclass
class _ClassMatch:
    scored: list[tuple[float, bool]]  # (score, true positive) per candidate instance
    positives: int
    missed: list[int]  # reference indices no candidate matched
    extra: list[int]  # candidate indices that matched nothing
    pairs: list[tuple[int, int]]  # (candidate index, reference index)


def _match(
    reference: FrameDetections,
    candidate: FrameDetections,
    cls: int,
    threshold: float,
    overlap: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> _ClassMatch:
    """Greedy by candidate score: each candidate of ``cls`` takes the unmatched reference instance
    it overlaps most, if by ``threshold`` (``overlap(candidate_idx, reference_idx)`` -> matrix)."""
    ref_idx = np.flatnonzero(reference.class_ids == cls)
    cand_idx = np.flatnonzero(candidate.class_ids == cls)
    cand_idx = cand_idx[np.argsort(-candidate.scores[cand_idx], kind="stable")]
    overlaps = overlap(cand_idx, ref_idx)
    taken = np.zeros(len(ref_idx), bool)
    scored: list[tuple[float, bool]] = []
    extra: list[int] = []
    pairs: list[tuple[int, int]] = []
    for row, index in enumerate(cand_idx):  # greedy assignment: inherently sequential
        best = -1
        if len(ref_idx):
            free = np.where(taken, -1.0, overlaps[row])
            best = int(np.argmax(free))
            if free[best] < threshold:
                best = -1
        if best >= 0:
            taken[best] = True
            pairs.append((int(index), int(ref_idx[best])))
        else:
            extra.append(int(index))
        scored.append((float(candidate.scores[index]), best >= 0))
    missed = [int(i) for i, t in zip(ref_idx, taken) if not t]
    return _ClassMatch(scored, len(ref_idx), missed, extra, pairs)


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


def _name(class_names: Sequence[str], cls: int) -> str:
    return class_names[cls] if 0 <= cls < len(class_names) else str(cls)


@dataclass
class _MapResult:
    value: float
    per_class: dict[str, float]
    differences: list[dict[str, Any]]
    pairs: list[list[tuple[int, int]]]  # per frame


def _map50(
    reference: Sequence[FrameDetections],
    candidate: Sequence[FrameDetections],
    class_names: Sequence[str],
    overlap_of: Callable[[FrameDetections, FrameDetections], Callable[[Any, Any], np.ndarray]],
    threshold: float,
    what: str,
) -> _MapResult:
    """mAP (mean over classes seen on either side) of ``candidate`` against ``reference``."""
    classes = sorted({int(c) for f in list(reference) + list(candidate) for c in f.class_ids})
    scored: dict[int, list[tuple[float, bool]]] = {c: [] for c in classes}
    positives = dict.fromkeys(classes, 0)
    differences: list[dict[str, Any]] = []
    pairs: list[list[tuple[int, int]]] = []
    for frame, (ref, cand) in enumerate(zip(reference, candidate)):
        overlap = overlap_of(ref, cand)
        frame_pairs: list[tuple[int, int]] = []
        for cls in classes:
            match = _match(ref, cand, cls, threshold, overlap)
            scored[cls] += match.scored
            positives[cls] += match.positives
            frame_pairs += match.pairs
            for kind, source, indices in (
                ("missed by the conversion", ref, match.missed),
                ("extra in the conversion", cand, match.extra),
            ):
                for i in indices:
                    differences.append(
                        {
                            "frame": frame,
                            "kind": kind,
                            "class": _name(class_names, cls),
                            "score": round(float(source.scores[i]), 4),
                            "xyxy": [round(float(v), 1) for v in source.xyxy[i]],
                            "matched_by": what,
                        }
                    )
        pairs.append(frame_pairs)
    per_class = {
        _name(class_names, c): round(average_precision(scored[c], positives[c]), 4) for c in classes
    }
    value = float(np.mean(list(per_class.values()))) if per_class else 1.0
    return _MapResult(round(value, 4), per_class, differences, pairs)


def _boxes(ref: FrameDetections, cand: FrameDetections) -> Callable[[Any, Any], np.ndarray]:
    return lambda ci, ri: iou_matrix(cand.xyxy[ci], ref.xyxy[ri])


def _masks(ref: FrameDetections, cand: FrameDetections) -> Callable[[Any, Any], np.ndarray]:
    if ref.masks is None or cand.masks is None:
        raise ValueError("segmentation parity needs masks on both sides")
    ref_masks, cand_masks = ref.masks, cand.masks
    return lambda ci, ri: mask_iou_matrix(cand_masks[ci], ref_masks[ri])


def _rotated(ref: FrameDetections, cand: FrameDetections) -> Callable[[Any, Any], np.ndarray]:
    if ref.xywhr is None or cand.xywhr is None:
        raise ValueError("oriented-box parity needs xywhr on both sides")
    ref_boxes, cand_boxes = ref.xywhr, cand.xywhr
    return lambda ci, ri: _probiou(cand_boxes[ci], ref_boxes[ri])


def _keypoint_pck(
    reference: Sequence[FrameDetections],
    candidate: Sequence[FrameDetections],
    pairs: Sequence[Sequence[tuple[int, int]]],
    class_names: Sequence[str],
) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    """PCK@``PCK_ALPHA`` over the reference's visible keypoints of box-matched instances."""
    correct = visible = 0
    worst = 0.0
    differences: list[dict[str, Any]] = []
    for frame, (ref, cand, frame_pairs) in enumerate(zip(reference, candidate, pairs)):
        if not frame_pairs:
            continue
        if ref.keypoints is None or cand.keypoints is None:
            raise ValueError("keypoint parity needs keypoints on both sides")
        ci = np.asarray([c for c, _ in frame_pairs])
        ri = np.asarray([r for _, r in frame_pairs])
        ref_points, cand_points = ref.keypoints[ri, :, :2], cand.keypoints[ci, :, :2]
        seen = (
            ref.keypoint_confidence[ri] >= KEYPOINT_VISIBLE
            if ref.keypoint_confidence is not None
            else np.ones(ref_points.shape[:2], bool)
        )
        size = np.max(ref.xyxy[ri, 2:] - ref.xyxy[ri, :2], axis=1)  # longer box side
        error = np.linalg.norm(cand_points - ref_points, axis=2)
        ok = error <= PCK_ALPHA * size[:, None]
        correct += int(np.sum(seen & ok))
        visible += int(np.sum(seen))
        if np.any(seen):
            worst = max(worst, float(np.max(np.where(seen, error, 0.0))))
        for row in np.flatnonzero(np.any(seen & ~ok, axis=1)):
            bad = np.flatnonzero(seen[row] & ~ok[row])
            differences.append(
                {
                    "frame": frame,
                    "kind": "keypoints moved",
                    "class": _name(class_names, int(ref.class_ids[ri[row]])),
                    "score": round(float(ref.scores[ri[row]]), 4),
                    "xyxy": [round(float(v), 1) for v in ref.xyxy[ri[row]]],
                    "keypoints": bad.tolist(),
                    "error_px": round(float(error[row, bad].max()), 1),
                }
            )
    pck = correct / visible if visible else 1.0
    extra = {"keypoints_compared": visible, "keypoint_max_error_px": round(worst, 2)}
    return round(pck, 4), extra, differences


def _classification(
    reference: Sequence[FrameDetections],
    candidate: Sequence[FrameDetections],
    class_names: Sequence[str],
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    top1 = overlap = labels = 0.0
    worst = 0.0
    differences: list[dict[str, Any]] = []
    for frame, (ref, cand) in enumerate(zip(reference, candidate)):
        if ref.class_scores is None or cand.class_scores is None:
            raise ValueError("classification parity needs class scores on both sides")
        r, c = ref.class_scores, cand.class_scores
        k = min(5, len(r))
        r_order, c_order = np.argsort(-r, kind="stable"), np.argsort(-c, kind="stable")
        same_top = int(r_order[0]) == int(c_order[0])
        top1 += same_top
        overlap += len(set(r_order[:k].tolist()) & set(c_order[:k].tolist())) / k
        labels += bool(np.array_equal(r >= MULTI_LABEL_THRESHOLD, c >= MULTI_LABEL_THRESHOLD))
        worst = max(worst, float(np.max(np.abs(r - c))))
        if not same_top:
            differences.append(
                {
                    "frame": frame,
                    "kind": "top-1 changed",
                    "class": _name(class_names, int(r_order[0])),
                    "score": round(float(r[r_order[0]]), 4),
                    "converted": _name(class_names, int(c_order[0])),
                    "converted_score": round(float(c[c_order[0]]), 4),
                }
            )
    n = max(len(reference), 1)
    metrics = {
        "top1_agreement": round(top1 / n, 4),
        "top5_overlap": round(overlap / n, 4),
        "label_agreement": round(labels / n, 4),
        "score_max_abs_diff": round(worst, 4),
    }
    return metrics, differences


def parity_report(
    reference: Sequence[FrameDetections],
    candidate: Sequence[FrameDetections],
    class_names: Sequence[str],
    reference_outputs: Sequence[Sequence[np.ndarray]] = (),
    candidate_outputs: Sequence[Sequence[np.ndarray]] = (),
    *,
    task: str = "object-detection",
    multi_label: bool = False,
    iou_threshold: float = 0.5,
    max_differences: int = 50,
) -> ParityReport:
    """The task's metrics of ``candidate`` against ``reference`` (ground truth), cosines, differences."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference frames but {len(candidate)} candidate frames")
    key = gate_key(task, multi_label)
    metrics: dict[str, float] = {}
    differences: list[dict[str, Any]] = []
    per_class: dict[str, float] = {}
    if key.startswith("classification"):
        metrics, differences = _classification(reference, candidate, class_names)
    else:
        boxes = _map50(reference, candidate, class_names, _boxes, iou_threshold, "box")
        metrics["box_map50"] = boxes.value
        per_class, differences = boxes.per_class, boxes.differences
        if key == "instance-segmentation":
            masks = _map50(reference, candidate, class_names, _masks, iou_threshold, "mask")
            metrics["mask_map50"] = masks.value
            per_class, differences = masks.per_class, masks.differences
        elif key == "obb":
            rotated = _map50(reference, candidate, class_names, _rotated, iou_threshold, "obb")
            metrics["obb_map50"] = rotated.value
            per_class, differences = rotated.per_class, rotated.differences
        elif key == "keypoint-detection":
            pck, extra, moved = _keypoint_pck(reference, candidate, boxes.pairs, class_names)
            metrics["keypoint_pck"] = pck
            metrics.update(extra)
            differences = differences + moved
    headline = next(iter(DEFAULT_GATES[key]))
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
        agreement=metrics[headline],
        per_class_ap=per_class,
        cosine=cosines,
        differences=differences[:max_differences],
        reference_detections=sum(len(f.scores) for f in reference),
        candidate_detections=sum(len(f.scores) for f in candidate),
        task=key,
        metric=headline,
        metrics=metrics,
    )


def difference_text(difference: Mapping[str, Any]) -> str:
    """One line of the console report for a ``differences`` entry."""
    head = f"frame {difference['frame']}: {difference['kind']}: {difference['class']} {difference['score']:.2f}"
    if "converted" in difference:
        return f"{head} -> {difference['converted']} {difference['converted_score']:.2f}"
    if "keypoints" in difference:
        return (
            f"{head} at {difference['xyxy']}: keypoints {difference['keypoints']} "
            f"off by up to {difference['error_px']} px"
        )
    by = difference.get("matched_by", "box")
    return f"{head} at {difference['xyxy']}" + ("" if by == "box" else f" ({by} IoU < 0.5)")
