"""Raw YOLO outputs -> candidate boxes in input pixels, vectorised numpy.

Three heads:

* ``yolov8`` — Ultralytics YOLOv8/11 single output ``[1, 4+nc, N]``: cx, cy, w, h in
  input pixels, then one (sigmoid) score per class.
* ``yolov8_dfl`` — rknn_model_zoo YOLOv8/11: per stride (8, 16, 32) a box tensor of
  DFL logits ``[1, 4*reg_max, H, W]``, class scores ``[1, nc, H, W]`` and the clipped
  score sum ``[1, 1, H, W]``. The score sum only pre-filters cells: when the best
  class reaches the threshold, so does the sum.
* ``yolov5`` — three anchor heads ``[1, na*(5+nc), H, W]`` (sigmoid inside the model by
  default): xy = (2s - 0.5 + cell) * stride, wh = (2s)^2 * anchor, score = obj * class.

Every decoder keeps, per box, the best class among the allowed ones and drops
boxes under the confidence threshold before anything per-box is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coral_inference.models.errors import OutputMismatchError
from coral_inference.models.package import HeadSpec


@dataclass(frozen=True)
class Candidates:
    """Boxes that passed the confidence threshold, before NMS."""

    xyxy: np.ndarray  # [N, 4] float32, input pixels
    scores: np.ndarray  # [N] float32
    class_ids: np.ndarray  # [N] int64

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def top(self, k: int) -> Candidates:
        """The ``k`` highest-scoring candidates (all of them when there are fewer)."""
        if len(self) <= k:
            return self
        index = np.argpartition(-self.scores, k - 1)[:k]
        return Candidates(self.xyxy[index], self.scores[index], self.class_ids[index])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode(
    outputs: Sequence[np.ndarray],
    head: HeadSpec,
    num_classes: int,
    confidence: float,
    allowed_classes: np.ndarray | None = None,
) -> Candidates:
    """Dispatch on ``head.type``; ``allowed_classes`` restricts the classes a box may take."""
    if head.type == "yolov8":
        return decode_yolov8(outputs, num_classes, confidence, allowed_classes, sigmoid_in_model=head.sigmoid_in_model)
    if head.type == "yolov8_dfl":
        return decode_yolov8_dfl(outputs, head, num_classes, confidence, allowed_classes)
    return decode_yolov5(outputs, head, num_classes, confidence, allowed_classes)


def _best_class(scores: np.ndarray, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Best (score, class id) along axis 0 of a ``[nc, ...]`` score array."""
    if allowed is not None:
        scores = scores[allowed]
    best = scores.argmax(axis=0)
    best_scores = np.take_along_axis(scores, best[None], axis=0)[0]
    class_ids = allowed[best] if allowed is not None else best
    return best_scores, class_ids.astype(np.int64)


def decode_yolov8(
    outputs: Sequence[np.ndarray],
    num_classes: int,
    confidence: float,
    allowed_classes: np.ndarray | None = None,
    *,
    sigmoid_in_model: bool = True,
) -> Candidates:
    """Ultralytics single output ``[1, 4+nc, N]`` (``[1, N, 4+nc]`` is accepted too)."""
    if len(outputs) != 1:
        raise OutputMismatchError(
            f"head yolov8 expects one output [1, {4 + num_classes}, N], the model gave {len(outputs)}: "
            f"{[list(o.shape) for o in outputs]}; set head.type to the head the model was exported with"
        )
    raw = np.asarray(outputs[0])
    rows = 4 + num_classes
    if raw.ndim == 3 and raw.shape[0] == 1 and raw.shape[1] == rows:
        pred = raw[0]
    elif raw.ndim == 3 and raw.shape[0] == 1 and raw.shape[2] == rows:
        pred = raw[0].T
    else:
        raise OutputMismatchError(
            f"head yolov8 with {num_classes} classes expects an output [1, {rows}, N], got {list(raw.shape)}; "
            f"check 'classes' and 'head.type' in the manifest"
        )
    class_scores = pred[4:]
    if not sigmoid_in_model:
        class_scores = sigmoid(class_scores)
    scores, class_ids = _best_class(class_scores, allowed_classes)
    keep = np.flatnonzero(scores >= confidence)
    if keep.size == 0:
        return Candidates.empty()
    cx, cy, w, h = pred[:4, keep].astype(np.float32)
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return Candidates(xyxy, scores[keep].astype(np.float32), class_ids[keep])


def decode_yolov8_dfl(
    outputs: Sequence[np.ndarray],
    head: HeadSpec,
    num_classes: int,
    confidence: float,
    allowed_classes: np.ndarray | None = None,
) -> Candidates:
    """rknn_model_zoo nine-output layout (or six, without the score-sum branch)."""
    levels = len(head.strides)
    per_level = len(outputs) // levels if levels else 0
    if per_level not in (2, 3) or per_level * levels != len(outputs):
        raise OutputMismatchError(
            f"head yolov8_dfl with strides {head.strides} expects {3 * levels} outputs "
            f"(box, class scores, score sum per stride), the model gave {len(outputs)}: "
            f"{[list(o.shape) for o in outputs]}"
        )
    reg_max = head.reg_max
    bins = np.arange(reg_max, dtype=np.float32)
    all_boxes, all_scores, all_ids = [], [], []
    for level, stride in enumerate(head.strides):
        box, cls = np.asarray(outputs[per_level * level]), np.asarray(outputs[per_level * level + 1])
        _expect(box, (1, 4 * reg_max), f"box DFL output of stride {stride}")
        _expect(cls, (1, num_classes), f"class score output of stride {stride}")
        height, width = cls.shape[2:]
        if box.shape[2:] != (height, width):
            raise OutputMismatchError(
                f"stride {stride}: box grid {list(box.shape[2:])} differs from class grid {[height, width]}"
            )
        scores_map = cls[0].reshape(num_classes, -1)
        if not head.sigmoid_in_model:
            scores_map = sigmoid(scores_map)
        if per_level == 3 and head.sigmoid_in_model:
            score_sum = np.asarray(outputs[per_level * level + 2]).reshape(-1)
            cells = np.flatnonzero(score_sum >= confidence)
        else:
            cells = np.arange(height * width)
        if cells.size == 0:
            continue
        scores, class_ids = _best_class(scores_map[:, cells], allowed_classes)
        passed = scores >= confidence
        cells, scores, class_ids = cells[passed], scores[passed], class_ids[passed]
        if cells.size == 0:
            continue
        logits = box[0].reshape(4, reg_max, -1)[:, :, cells].astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        distances = (weights * bins[None, :, None]).sum(axis=1) / weights.sum(axis=1)  # [4, K] l, t, r, b
        cx = (cells % width).astype(np.float32) + 0.5
        cy = (cells // width).astype(np.float32) + 0.5
        xyxy = np.stack([cx - distances[0], cy - distances[1], cx + distances[2], cy + distances[3]], axis=1) * stride
        all_boxes.append(xyxy)
        all_scores.append(scores.astype(np.float32))
        all_ids.append(class_ids)
    if not all_boxes:
        return Candidates.empty()
    return Candidates(np.concatenate(all_boxes).astype(np.float32), np.concatenate(all_scores), np.concatenate(all_ids))


def decode_yolov5(
    outputs: Sequence[np.ndarray],
    head: HeadSpec,
    num_classes: int,
    confidence: float,
    allowed_classes: np.ndarray | None = None,
) -> Candidates:
    """Three anchor heads ``[1, na*(5+nc), H, W]``, one per stride."""
    anchors = head.anchor_pairs
    if len(outputs) != len(head.strides):
        raise OutputMismatchError(
            f"head yolov5 with strides {head.strides} expects {len(head.strides)} outputs, "
            f"the model gave {len(outputs)}: {[list(o.shape) for o in outputs]}"
        )
    per_anchor = 5 + num_classes
    all_boxes, all_scores, all_ids = [], [], []
    for raw, stride, level_anchors in zip(outputs, head.strides, anchors):
        na = len(level_anchors) // 2
        raw = np.asarray(raw)
        _expect(raw, (1, na * per_anchor), f"anchor head of stride {stride}")
        height, width = raw.shape[2:]
        pred = raw[0].reshape(na, per_anchor, height * width).astype(np.float32, copy=False)
        if not head.sigmoid_in_model:
            pred = sigmoid(pred)
        class_scores = pred[:, 5:] * pred[:, 4:5]  # [na, nc, HW]
        scores, class_ids = _best_class(class_scores.transpose(1, 0, 2).reshape(num_classes, -1), allowed_classes)
        keep = np.flatnonzero(scores >= confidence)  # index = anchor * HW + cell
        if keep.size == 0:
            continue
        anchor_index, cells = np.divmod(keep, height * width)
        flat = pred.transpose(0, 2, 1).reshape(-1, per_anchor)[keep]  # rows of the kept boxes
        grid = np.stack([cells % width, cells // width], axis=1).astype(np.float32)
        xy = (flat[:, 0:2] * 2 - 0.5 + grid) * stride
        anchor_wh = np.asarray(level_anchors, dtype=np.float32).reshape(na, 2)[anchor_index]
        wh = (flat[:, 2:4] * 2) ** 2 * anchor_wh
        all_boxes.append(np.concatenate([xy - wh / 2, xy + wh / 2], axis=1))
        all_scores.append(scores[keep].astype(np.float32))
        all_ids.append(class_ids[keep])
    if not all_boxes:
        return Candidates.empty()
    return Candidates(np.concatenate(all_boxes).astype(np.float32), np.concatenate(all_scores), np.concatenate(all_ids))


def _expect(tensor: np.ndarray, leading: tuple[int, int], what: str) -> None:
    if tensor.ndim != 4 or tuple(tensor.shape[:2]) != leading:
        raise OutputMismatchError(
            f"{what}: expected [{leading[0]}, {leading[1]}, H, W], got {list(tensor.shape)}; "
            f"check 'classes', 'head.reg_max' and the output order of the export"
        )
