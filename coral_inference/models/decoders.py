"""Raw YOLO outputs -> candidate boxes in input pixels, vectorised numpy.

Five heads:

* ``yolov8`` — Ultralytics YOLOv8/11 single output ``[1, 4+nc, N]``: cx, cy, w, h in
  input pixels, then one (sigmoid) score per class.
* ``yolov8_dfl`` — rknn_model_zoo YOLOv8/11: per stride (8, 16, 32) a box tensor of
  DFL logits ``[1, 4*reg_max, H, W]``, class scores ``[1, nc, H, W]`` and the clipped
  score sum ``[1, 1, H, W]``. The score sum only pre-filters cells: when the best
  class reaches the threshold, so does the sum.
* ``yolov5`` — three anchor heads ``[1, na*(5+nc), H, W]`` (sigmoid inside the model by
  default): xy = (2s - 0.5 + cell) * stride, wh = (2s)^2 * anchor, score = obj * class.
* ``end2end`` — one ``[1, K, 6]`` output (x1 y1 x2 y2 score class) from a model that already
  filtered its boxes (YOLOv10, YOLO26, Ultralytics ``nms=True``); the detector runs no NMS.
* ``yolov5_single`` — the classic YOLOv5 export ``[1, N, 5+nc]`` (cx cy w h obj classes),
  score = obj * class.

``head.box_units: normalized`` scales 0-1 coordinates to input pixels (Ultralytics' int8
RKNN builds). When the decoder knows the input size it also checks the output geometry:
the candidate count must match the strides (8400 for 640x640), and box coordinates must
be in the declared units — a mismatch names the model family the output looks like.

Every decoder keeps, per box, the best class among the allowed ones and drops
boxes under the confidence threshold before anything per-box is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coral_inference.models.errors import OutputMismatchError
from coral_inference.models.package import HeadSpec

_PIXEL_YOLOV8 = HeadSpec.model_validate({"type": "yolov8"})


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
    *,
    input_size: tuple[int, int] | None = None,
) -> Candidates:
    """Dispatch on ``head.type``; ``allowed_classes`` restricts the classes a box may take.

    ``input_size`` (width, height) enables the geometry and box-unit checks and is required
    for ``box_units: normalized``.
    """
    if head.box_units == "normalized" and input_size is None:
        raise ValueError(
            "head.box_units 'normalized' needs the input size to scale boxes to pixels"
        )
    if head.type == "yolov8":
        candidates = decode_yolov8(
            outputs,
            num_classes,
            confidence,
            allowed_classes,
            sigmoid_in_model=head.sigmoid_in_model,
            head=head,
            input_size=input_size,
        )
    elif head.type == "yolov8_dfl":
        candidates = decode_yolov8_dfl(outputs, head, num_classes, confidence, allowed_classes)
    elif head.type == "end2end":
        candidates = decode_end2end(
            outputs, head, num_classes, confidence, allowed_classes, input_size=input_size
        )
    elif head.type == "yolov5_single":
        candidates = decode_yolov5_single(
            outputs, head, num_classes, confidence, allowed_classes, input_size=input_size
        )
    else:
        candidates = decode_yolov5(outputs, head, num_classes, confidence, allowed_classes)
    if head.box_units == "normalized" and input_size is not None and len(candidates):
        scale = np.asarray([input_size[0], input_size[1], input_size[0], input_size[1]], np.float32)
        candidates = Candidates(candidates.xyxy * scale, candidates.scores, candidates.class_ids)
    return candidates


def grid_cells(strides: Sequence[int], input_size: tuple[int, int]) -> int:
    """Anchor points of a stride pyramid for an input (width, height): 8400 for 640x640 and 8/16/32."""
    width, height = input_size
    return sum(-(-height // s) * -(-width // s) for s in strides)


def check_box_units(coords: np.ndarray, head: HeadSpec, input_size: tuple[int, int] | None) -> None:
    """Refuse boxes whose magnitude contradicts ``head.box_units`` (coords: centre or corner values)."""
    if input_size is None or coords.size == 0 or min(input_size) < 32:
        return
    largest = float(np.nanmax(np.abs(coords)))
    if head.box_units == "pixels" and largest <= 1.5 and float(np.nanmin(coords)) >= -0.25:
        raise OutputMismatchError(
            f"head {head.type}: every box coordinate is <= {largest:.3g} although the input is "
            f"{input_size[0]}x{input_size[1]} pixels: the model emits normalised (0-1) boxes "
            f"(e.g. an Ultralytics int8 RKNN build); set head.box_units: normalized in the manifest"
        )
    if head.box_units == "normalized" and largest > 2.0:
        raise OutputMismatchError(
            f"head {head.type}: box coordinates reach {largest:.4g} but head.box_units is 'normalized' "
            f"(0-1); the model emits pixel boxes: set head.box_units: pixels"
        )


def describe_layout(
    shapes: Sequence[Sequence[int]],
    num_classes: int | None = None,
    input_size: tuple[int, int] | None = None,
    strides: Sequence[int] = (8, 16, 32),
) -> str:
    """Which model family a set of output shapes looks like (for error messages)."""
    shapes = [list(s) for s in shapes]
    cells = grid_cells(strides, input_size) if input_size else None
    if len(shapes) == 2 and len(shapes[1]) == 4 and len(shapes[0]) == 3:
        return (
            f"an instance-segmentation export (detections {shapes[0]} plus mask prototypes {shapes[1]}): "
            f"import it with 'coral-runtime models import' so the segmentation head is used"
        )
    if len(shapes) == 1 and len(shapes[0]) == 2:
        return f"a classification export (one score per class, {shapes[0]}), not a detector"
    if len(shapes) == 1 and len(shapes[0]) == 3:
        _, a, b = shapes[0]
        if b in (6, 7) and a in (100, 300) or a in (6, 7) and b in (100, 300):
            return (
                f"an end-to-end / already-NMS'd export ({shapes[0]}: x1 y1 x2 y2 score class per row): "
                f"use head.type: end2end"
            )
        n, rows = (b, a) if cells is not None and b == cells or a < b else (a, b)
        if cells is not None and n == 3 * cells:
            return f"a classic YOLOv5 export ({shapes[0]}: cx cy w h objectness classes): use head.type: yolov5_single"
        if cells is not None and input_size is not None and n != cells:
            return (
                f"an output with {n} candidates where a {input_size[0]}x{input_size[1]} input with strides "
                f"{list(strides)} gives {cells}: check input.width/height"
            )
        if num_classes is not None and rows > 4 + num_classes:
            extra = rows - 4 - num_classes
            guesses = []
            if extra == 1:
                guesses.append("an oriented-box (OBB) export (one angle per box)")
            if extra % 3 == 0:
                guesses.append(
                    f"a keypoint (pose) export with {extra // 3} keypoints (x, y, visibility)"
                )
            if extra % 2 == 0 and extra <= 34:
                guesses.append(f"a keypoint (pose) export with {extra // 2} keypoints (x, y)")
            if extra == 32:
                guesses.append("a segmentation export without its prototype output")
            if guesses:
                return (
                    f"{rows} rows = 4 box + {num_classes} classes + {extra} more: "
                    + " or ".join(guesses)
                    + "; import it with 'coral-runtime models import' (it reads the task) instead of adding classes"
                )
    return "no known layout"


def best_class(scores: np.ndarray, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Best (score, class id) along axis 0 of a ``[nc, ...]`` score array."""
    if allowed is not None:
        scores = scores[allowed]
    best = scores.argmax(axis=0)
    best_scores = np.take_along_axis(scores, best[None], axis=0)[0]
    class_ids = allowed[best] if allowed is not None else best
    return best_scores, class_ids.astype(np.int64)


def boxes_over_threshold(
    boxes_cxcywh: np.ndarray,
    class_scores: np.ndarray,
    confidence: float,
    allowed: np.ndarray | None,
) -> Candidates:
    """Single-output heads: anchors whose best allowed class reaches ``confidence``, as xyxy.

    ``boxes_cxcywh`` is ``[4, N]``, ``class_scores`` ``[nc, N]``. The best class is looked up
    only for the anchors over the threshold (a trained model's few hundred of N); the
    maximum over the classes is all the others need.
    """
    best = (class_scores if allowed is None else class_scores[allowed]).max(axis=0)
    keep = np.flatnonzero(best >= confidence)
    if keep.size == 0:
        return Candidates.empty()
    scores, class_ids = best_class(class_scores[:, keep], allowed)
    cx, cy, w, h = boxes_cxcywh[:, keep].astype(np.float32)
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return Candidates(xyxy, scores.astype(np.float32), class_ids)


def decode_yolov8(
    outputs: Sequence[np.ndarray],
    num_classes: int,
    confidence: float,
    allowed_classes: np.ndarray | None = None,
    *,
    sigmoid_in_model: bool = True,
    head: HeadSpec | None = None,
    input_size: tuple[int, int] | None = None,
) -> Candidates:
    """Ultralytics single output ``[1, 4+nc, N]`` (``[1, N, 4+nc]`` is accepted too)."""
    if len(outputs) != 1:
        shapes = [list(o.shape) for o in outputs]
        looks = describe_layout(
            shapes, num_classes, input_size, head.strides if head else (8, 16, 32)
        )
        raise OutputMismatchError(
            f"head yolov8 expects one output [1, {4 + num_classes}, N], the model gave {len(outputs)}: "
            f"{shapes}; "
            + (
                f"it looks like {looks}"
                if looks != "no known layout"
                else "set head.type to the head the model was exported with"
            )
        )
    raw = np.asarray(outputs[0])
    rows = 4 + num_classes
    if raw.ndim == 3 and raw.shape[0] == 1 and raw.shape[1] == rows:
        pred = raw[0]
    elif raw.ndim == 3 and raw.shape[0] == 1 and raw.shape[2] == rows:
        pred = raw[0].T
    else:
        looks = describe_layout(
            [raw.shape], num_classes, input_size, head.strides if head else (8, 16, 32)
        )
        hint = (
            f"it looks like {looks}"
            if looks != "no known layout"
            else "check 'classes' and 'head.type' in the manifest"
        )
        raise OutputMismatchError(
            f"head yolov8 with {num_classes} classes expects an output [1, {rows}, N], got {list(raw.shape)}; {hint}"
        )
    if input_size is not None:
        strides = head.strides if head is not None else [8, 16, 32]
        expected = grid_cells(strides, input_size)
        if pred.shape[1] != expected:
            looks = describe_layout([raw.shape], num_classes, None, strides)
            hint = (
                f"it looks like {looks}"
                if looks != "no known layout"
                else "check input.width/height (the size the model was exported at) and head.strides"
            )
            raise OutputMismatchError(
                f"head yolov8: the output {list(raw.shape)} has {pred.shape[1]} candidates but a "
                f"{input_size[0]}x{input_size[1]} input with strides {list(strides)} gives {expected}; {hint}"
            )
        check_box_units(pred[:2], head or _PIXEL_YOLOV8, input_size)
    class_scores = pred[4:]
    if not sigmoid_in_model:
        class_scores = sigmoid(class_scores)
    return boxes_over_threshold(pred[:4], class_scores, confidence, allowed_classes)


def dfl_boxes(
    box_logits: np.ndarray, cells: np.ndarray, width: int, stride: int, reg_max: int
) -> np.ndarray:
    """Distribution-focal-loss box logits ``[4*reg_max, HW]`` of ``cells`` -> xyxy input pixels.

    With ``reg_max`` 1 (YOLO26) the box branch gives l, t, r, b in grid units, no DFL.
    """
    logits = box_logits.reshape(4, reg_max, -1)[:, :, cells].astype(np.float32)
    if reg_max == 1:
        distances = logits[:, 0, :]
    else:
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        bins = np.arange(reg_max, dtype=np.float32)[None, :, None]
        distances = (weights * bins).sum(axis=1) / weights.sum(axis=1)  # [4, K] l, t, r, b
    cx = (cells % width).astype(np.float32) + 0.5
    cy = (cells // width).astype(np.float32) + 0.5
    return (
        np.stack(
            [cx - distances[0], cy - distances[1], cx + distances[2], cy + distances[3]], axis=1
        )
        * stride
    ).astype(np.float32)


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
    all_boxes, all_scores, all_ids = [], [], []
    for level, stride in enumerate(head.strides):
        box, cls = (
            np.asarray(outputs[per_level * level]),
            np.asarray(outputs[per_level * level + 1]),
        )
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
        scores, class_ids = best_class(scores_map[:, cells], allowed_classes)
        passed = scores >= confidence
        cells, scores, class_ids = cells[passed], scores[passed], class_ids[passed]
        if cells.size == 0:
            continue
        all_boxes.append(dfl_boxes(box[0].reshape(4 * reg_max, -1), cells, width, stride, reg_max))
        all_scores.append(scores.astype(np.float32))
        all_ids.append(class_ids)
    if not all_boxes:
        return Candidates.empty()
    return Candidates(
        np.concatenate(all_boxes).astype(np.float32),
        np.concatenate(all_scores),
        np.concatenate(all_ids),
    )


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
        scores, class_ids = best_class(
            class_scores.transpose(1, 0, 2).reshape(num_classes, -1), allowed_classes
        )
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
    return Candidates(
        np.concatenate(all_boxes).astype(np.float32),
        np.concatenate(all_scores),
        np.concatenate(all_ids),
    )


def decode_end2end(
    outputs: Sequence[np.ndarray],
    head: HeadSpec,
    num_classes: int,
    confidence: float,
    allowed_classes: np.ndarray | None = None,
    *,
    input_size: tuple[int, int] | None = None,
) -> Candidates:
    """One ``[1, K, 6]`` output: x1 y1 x2 y2 score class per row, already the final boxes."""
    shapes = [list(o.shape) for o in outputs]
    if len(outputs) != 1 or np.asarray(outputs[0]).ndim != 3 or np.asarray(outputs[0]).shape[2] < 6:
        raise OutputMismatchError(
            f"head end2end expects one output [1, K, 6] (x1 y1 x2 y2 score class), the model gave {shapes}; "
            f"it looks like {describe_layout(shapes, num_classes, input_size, head.strides)}"
        )
    rows = np.asarray(outputs[0])[0].astype(np.float32, copy=False)
    if rows.shape[1] != 6:
        raise OutputMismatchError(
            f"head end2end: rows of {rows.shape[1]} values ({shapes[0]}); a detection export has 6 "
            f"(x1 y1 x2 y2 score class) — extra values belong to a segmentation, pose or OBB export: "
            f"import it with 'coral-runtime models import' so the task's head is used"
        )
    valid = rows[rows[:, 4] > 0]
    check_box_units(valid[:, :4], head, input_size)
    class_ids = np.rint(rows[:, 5]).astype(np.int64)
    out_of_range = class_ids[
        (rows[:, 4] >= confidence) & ((class_ids < 0) | (class_ids >= num_classes))
    ]
    if out_of_range.size:
        raise OutputMismatchError(
            f"head end2end: the model reports class id {int(out_of_range.max())} but the manifest lists "
            f"{num_classes} classes; give every class name in 'classes' (in the model's order)"
        )
    keep = rows[:, 4] >= confidence
    if allowed_classes is not None:
        keep &= np.isin(class_ids, allowed_classes)
    index = np.flatnonzero(keep)
    if index.size == 0:
        return Candidates.empty()
    return Candidates(rows[index, :4].copy(), rows[index, 4].copy(), class_ids[index])


def decode_yolov5_single(
    outputs: Sequence[np.ndarray],
    head: HeadSpec,
    num_classes: int,
    confidence: float,
    allowed_classes: np.ndarray | None = None,
    *,
    input_size: tuple[int, int] | None = None,
) -> Candidates:
    """Classic YOLOv5 export ``[1, N, 5+nc]``: cx cy w h, objectness, class scores (``[1, 5+nc, N]`` too)."""
    shapes = [list(o.shape) for o in outputs]
    per_box = 5 + num_classes
    raw = np.asarray(outputs[0]) if len(outputs) == 1 else None
    if raw is not None and raw.ndim == 3 and raw.shape[0] == 1 and raw.shape[2] == per_box:
        pred = raw[0].T
    elif raw is not None and raw.ndim == 3 and raw.shape[0] == 1 and raw.shape[1] == per_box:
        pred = raw[0]
    else:
        raise OutputMismatchError(
            f"head yolov5_single with {num_classes} classes expects one output [1, N, {per_box}], the model gave "
            f"{shapes}; check 'classes' (their count) and 'head.type'"
        )
    if input_size is not None:
        expected = 3 * grid_cells(head.strides, input_size)
        if pred.shape[1] != expected:
            raise OutputMismatchError(
                f"head yolov5_single: {pred.shape[1]} candidates but a {input_size[0]}x{input_size[1]} input "
                f"with strides {head.strides} and 3 anchors each gives {expected}; check input.width/height"
            )
        check_box_units(pred[:2], head, input_size)
    pred = pred.astype(np.float32, copy=False)
    if not head.sigmoid_in_model:
        pred = np.concatenate([pred[:4], sigmoid(pred[4:])])
    return boxes_over_threshold(pred[:4], pred[5:] * pred[4:5], confidence, allowed_classes)


def _expect(tensor: np.ndarray, leading: tuple[int, int], what: str) -> None:
    if tensor.ndim != 4 or tuple(tensor.shape[:2]) != leading:
        raise OutputMismatchError(
            f"{what}: expected [{leading[0]}, {leading[1]}, H, W], got {list(tensor.shape)}; "
            f"check 'classes', 'head.reg_max' and the output order of the export"
        )
