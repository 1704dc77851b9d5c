"""Raw outputs of segmentation, pose, OBB, classification and RF-DETR heads -> candidates.

Layouts (N anchor points = sum over strides of (H/s)*(W/s); L = number of strides):

* ``yolov8_seg``: ``[1, 4+nc+nm, N]`` (cx cy w h, class scores, mask coefficients) and
  prototypes ``[1, nm, H/4, W/4]``.
* ``yolov8_seg_dfl`` (rknn_model_zoo yolov8_seg): per stride box DFL ``[1, 4*reg_max, h, w]``,
  class scores ``[1, nc, h, w]``, score sum ``[1, 1, h, w]``, coefficients ``[1, nm, h, w]``;
  prototypes last.
* ``yolov8_pose``: ``[1, 4+nc+K*dims, N]``, keypoints decoded in input pixels.
* ``yolov8_pose_dfl`` (rknn_model_zoo yolov8_pose): per stride ``[1, 4*reg_max+nc, h, w]``
  (box DFL then class *logits*), then keypoints ``[1, K, dims, N]`` in input pixels.
* ``yolov8_obb``: ``[1, 4+nc+1, N]``, angle in radians last.
* ``yolov8_cls``: ``[1, nc]``.
* ``rfdetr`` / ``rfdetr_seg``: boxes ``[1, Q, 4]`` (normalised cx cy w h), class logits
  ``[1, Q, nc]`` or ``[1, Q, nc+1]``, and for seg mask logits ``[1, Q, h, w]``.

``check_layout`` compares a model's output shapes with what the head needs and
raises :class:`OutputMismatchError` naming both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from coral_inference.models.decoders import best_class, dfl_boxes, sigmoid
from coral_inference.models.errors import OutputMismatchError
from coral_inference.models.package import HeadSpec

PROTOTYPE_STRIDE = 4


@dataclass(frozen=True)
class LayoutContext:
    """What a head's layout depends on besides the head itself."""

    num_classes: int
    input_wh: tuple[int, int]
    num_keypoints: int = 0

    def cells(self, strides: Sequence[int]) -> int:
        width, height = self.input_wh
        return sum(-(-height // s) * -(-width // s) for s in strides)

    def grids(self, strides: Sequence[int]) -> list[tuple[int, int]]:
        width, height = self.input_wh
        return [(-(-height // s), -(-width // s)) for s in strides]


@dataclass
class TaskCandidates:
    """Boxes over the confidence threshold with their task payload, in input pixels."""

    xyxy: np.ndarray  # (n, 4) float32
    scores: np.ndarray  # (n,) float32
    class_ids: np.ndarray  # (n,) int64
    extra: (
        np.ndarray
    )  # seg (n, nm) coefficients; pose (n, K, dims); obb (n, 5) xywhr; rfdetr seg (n, h, w)
    prototypes: np.ndarray | None = field(default=None)  # seg (nm, h, w)

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: np.ndarray) -> TaskCandidates:
        return TaskCandidates(
            self.xyxy[index],
            self.scores[index],
            self.class_ids[index],
            self.extra[index],
            self.prototypes,
        )

    def top(self, k: int) -> TaskCandidates:
        if len(self) <= k:
            return self
        return self.take(np.argpartition(-self.scores, k - 1)[:k])


# ---------------------------------------------------------------------------------------- layouts


def expected_shapes(
    head: HeadSpec, ctx: LayoutContext, actual: Sequence[Sequence[int]] = ()
) -> list[str]:
    """Readable expected output shapes (``nm`` and ``Q`` read from ``actual`` when present)."""
    nc, (width, height) = ctx.num_classes, ctx.input_wh
    n = ctx.cells(head.strides)
    nm = _num_masks(head, actual)
    k, dims = ctx.num_keypoints, head.keypoint_dims
    grids = ctx.grids(head.strides)
    proto = f"[1, {nm}, {height // PROTOTYPE_STRIDE}, {width // PROTOTYPE_STRIDE}]"
    if head.type == "yolov8_seg":
        return [f"[1, {4 + nc + nm}, {n}]", proto]
    if head.type == "yolov8_seg_dfl":
        shapes = []
        for gh, gw in grids:
            shapes += [
                f"[1, {4 * head.reg_max}, {gh}, {gw}]",
                f"[1, {nc}, {gh}, {gw}]",
                f"[1, 1, {gh}, {gw}]",
                f"[1, {nm}, {gh}, {gw}]",
            ]
        return shapes + [proto]
    if head.type == "yolov8_pose":
        return [f"[1, {4 + nc + k * dims}, {n}]"]
    if head.type == "yolov8_pose_dfl":
        return [f"[1, {4 * head.reg_max + nc}, {gh}, {gw}]" for gh, gw in grids] + [
            f"[1, {k}, {dims}, {n}]"
        ]
    if head.type == "yolov8_obb":
        return [f"[1, {4 + nc + 1}, {n}]"]
    if head.type == "yolov8_cls":
        return [f"[1, {nc}]"]
    q = actual[0][1] if actual and len(actual[0]) == 3 else "Q"
    shapes = [f"[1, {q}, 4]", f"[1, {q}, {nc}] (or {nc + 1})"]
    if head.type == "rfdetr_seg":
        shapes.append(f"[1, {q}, h, w]")
    return shapes


def _num_masks(head: HeadSpec, actual: Sequence[Sequence[int]]) -> int:
    if head.type in ("yolov8_seg", "yolov8_seg_dfl") and actual and len(actual[-1]) == 4:
        return int(actual[-1][1])
    return 32


def check_layout(
    head: HeadSpec, shapes: Sequence[Sequence[int]], ctx: LayoutContext, what: str = "model"
) -> None:
    """Raise ``OutputMismatchError`` unless ``shapes`` fit ``head`` (dynamic dims match all)."""
    actual = [list(s) for s in shapes]
    expected = expected_shapes(head, ctx, actual)
    if _fits(head, actual, ctx):
        return
    raise OutputMismatchError(
        f"{what}: head {head.type} with {ctx.num_classes} classes"
        + (f" and {ctx.num_keypoints} keypoints" if ctx.num_keypoints else "")
        + f" at input {ctx.input_wh[0]}x{ctx.input_wh[1]} expects outputs {', '.join(expected)}; "
        f"the model has {len(actual)} output(s): {', '.join(str(s) for s in actual)}. "
        f"Check task, head.type, classes"
        + (", keypoints.names" if ctx.num_keypoints else "")
        + " and input size in the manifest against the export"
    )


def _dim_ok(actual: object, expected: int) -> bool:
    return not isinstance(actual, int) or actual <= 0 or actual == expected


def _shape_ok(actual: Sequence[object], expected: Sequence[int | None]) -> bool:
    return len(actual) == len(expected) and all(
        e is None or _dim_ok(a, e) for a, e in zip(actual, expected)
    )


def _single_ok(actual: Sequence[object], rows: int, n: int) -> bool:
    return _shape_ok(actual, [1, rows, n]) or _shape_ok(actual, [1, n, rows])


def _fits(head: HeadSpec, actual: list[list[int]], ctx: LayoutContext) -> bool:
    nc, (width, height) = ctx.num_classes, ctx.input_wh
    n = ctx.cells(head.strides)
    grids = ctx.grids(head.strides)
    proto = [1, None, height // PROTOTYPE_STRIDE, width // PROTOTYPE_STRIDE]
    if head.type == "yolov8_seg":
        if len(actual) != 2 or not _shape_ok(actual[1], proto):
            return False
        return _single_ok(actual[0], 4 + nc + _num_masks(head, actual), n)
    if head.type == "yolov8_seg_dfl":
        if len(actual) != 4 * len(grids) + 1 or not _shape_ok(actual[-1], proto):
            return False
        nm = _num_masks(head, actual)
        for level, (gh, gw) in enumerate(grids):
            box, cls, total, coef = actual[4 * level : 4 * level + 4]
            if not (
                _shape_ok(box, [1, 4 * head.reg_max, gh, gw])
                and _shape_ok(cls, [1, nc, gh, gw])
                and _shape_ok(total, [1, 1, gh, gw])
                and _shape_ok(coef, [1, nm, gh, gw])
            ):
                return False
        return True
    if head.type == "yolov8_pose":
        return len(actual) == 1 and _single_ok(
            actual[0], 4 + nc + ctx.num_keypoints * head.keypoint_dims, n
        )
    if head.type == "yolov8_pose_dfl":
        if len(actual) != len(grids) + 1:
            return False
        levels_ok = all(
            _shape_ok(a, [1, 4 * head.reg_max + nc, gh, gw]) for a, (gh, gw) in zip(actual, grids)
        )
        return levels_ok and _shape_ok(actual[-1], [1, ctx.num_keypoints, head.keypoint_dims, n])
    if head.type == "yolov8_obb":
        return len(actual) == 1 and _single_ok(actual[0], 4 + nc + 1, n)
    if head.type == "yolov8_cls":
        return len(actual) == 1 and _shape_ok(actual[0], [1, nc])
    if head.type in ("rfdetr", "rfdetr_seg"):
        wanted = 3 if head.type == "rfdetr_seg" else 2
        if len(actual) != wanted or len(actual[0]) != 3 or len(actual[1]) != 3:
            return False
        q = actual[0][1]
        ok = _shape_ok(actual[0], [1, q, 4]) and (
            _shape_ok(actual[1], [1, q, nc]) or _shape_ok(actual[1], [1, q, nc + 1])
        )
        return ok and (wanted == 2 or _shape_ok(actual[2], [1, q, None, None]))
    return True


# ---------------------------------------------------------------------------------------- decoding


def _rows_first(raw: np.ndarray, rows: int) -> np.ndarray:
    """``[1, rows, N]`` or ``[1, N, rows]`` -> ``(rows, N)``."""
    return raw[0] if raw.shape[1] == rows else raw[0].T


def _cxcywh_to_xyxy(cx: np.ndarray, cy: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


def decode_single(
    raw: np.ndarray,
    num_classes: int,
    extra_rows: int,
    confidence: float,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One Ultralytics output -> (cx cy w h, scores, class ids, extra rows) over the threshold."""
    pred = _rows_first(np.asarray(raw), 4 + num_classes + extra_rows)
    class_scores = pred[4 : 4 + num_classes]
    # The best class is looked up only for anchors over the threshold (a trained model's
    # few hundred of N); the max over classes is all the others need.
    best = (class_scores if allowed is None else class_scores[allowed]).max(axis=0)
    keep = np.flatnonzero(best > confidence)
    scores, class_ids = best_class(class_scores[:, keep], allowed)
    boxes = pred[:4, keep].T.astype(np.float32)
    extras = pred[4 + num_classes :, keep].T.astype(np.float32)
    return boxes, scores.astype(np.float32), class_ids, extras


def decode_seg(
    outputs: Sequence[np.ndarray],
    head: HeadSpec,
    num_classes: int,
    confidence: float,
    allowed: np.ndarray | None,
) -> TaskCandidates:
    prototypes = np.asarray(outputs[-1])[0]
    nm = prototypes.shape[0]
    if head.type == "yolov8_seg":
        boxes, scores, class_ids, coefficients = decode_single(
            outputs[0], num_classes, nm, confidence, allowed
        )
        return TaskCandidates(
            _cxcywh_to_xyxy(*boxes.T), scores, class_ids, coefficients, prototypes
        )
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for level, stride in enumerate(head.strides):
        box, cls, total, coef = (np.asarray(o)[0] for o in outputs[4 * level : 4 * level + 4])
        height, width = cls.shape[1:]
        scores_map = cls.reshape(num_classes, -1)
        if not head.sigmoid_in_model:
            scores_map = sigmoid(scores_map)
        cells = (
            np.flatnonzero(total.reshape(-1) > confidence)
            if head.sigmoid_in_model
            else np.arange(height * width)
        )
        scores, class_ids = best_class(scores_map[:, cells], allowed)
        passed = scores > confidence
        cells = cells[passed]
        xyxy = dfl_boxes(box.reshape(4 * head.reg_max, -1), cells, width, stride, head.reg_max)
        parts.append(
            (
                xyxy,
                scores[passed].astype(np.float32),
                class_ids[passed],
                coef.reshape(nm, -1)[:, cells].T,
            )
        )
    return TaskCandidates(*(np.concatenate(p) for p in zip(*parts)), prototypes=prototypes)


def decode_pose(
    outputs: Sequence[np.ndarray],
    head: HeadSpec,
    num_classes: int,
    num_keypoints: int,
    confidence: float,
    allowed: np.ndarray | None,
) -> TaskCandidates:
    dims = head.keypoint_dims
    if head.type == "yolov8_pose":
        boxes, scores, class_ids, flat = decode_single(
            outputs[0], num_classes, num_keypoints * dims, confidence, allowed
        )
        return TaskCandidates(
            _cxcywh_to_xyxy(*boxes.T), scores, class_ids, flat.reshape(-1, num_keypoints, dims)
        )
    keypoints = np.asarray(outputs[-1])[0]  # (K, dims, N) over all strides
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    offset = 0
    for level, stride in enumerate(head.strides):
        raw = np.asarray(outputs[level])[0]
        height, width = raw.shape[1:]
        flat = raw.reshape(raw.shape[0], -1)
        box_rows = 4 * head.reg_max
        scores_all, class_all = best_class(
            sigmoid(flat[box_rows : box_rows + num_classes].astype(np.float32)), allowed
        )
        cells = np.flatnonzero(scores_all > confidence)
        xyxy = dfl_boxes(flat[:box_rows], cells, width, stride, head.reg_max)
        points = keypoints[:, :, offset + cells].transpose(2, 0, 1).astype(np.float32)
        parts.append((xyxy, scores_all[cells].astype(np.float32), class_all[cells], points))
        offset += height * width
    return TaskCandidates(*(np.concatenate(p) for p in zip(*parts)))


def decode_obb(
    outputs: Sequence[np.ndarray], num_classes: int, confidence: float, allowed: np.ndarray | None
) -> TaskCandidates:
    boxes, scores, class_ids, angle = decode_single(outputs[0], num_classes, 1, confidence, allowed)
    xywhr = np.concatenate([boxes, angle], axis=1).astype(np.float32)
    return TaskCandidates(_cxcywh_to_xyxy(*boxes.T), scores, class_ids, xywhr)


def classification_scores(
    outputs: Sequence[np.ndarray], head: HeadSpec, num_classes: int, multi_label: bool
) -> np.ndarray:
    """``(nc,)`` probabilities; refuses logits declared as probabilities (``activation: none``)."""
    raw = np.asarray(outputs[0], dtype=np.float32).reshape(-1)
    if head.activation == "softmax":
        shifted = np.exp(raw - raw.max())
        return (shifted / shifted.sum()).astype(np.float32)
    if head.activation == "sigmoid":
        return sigmoid(raw).astype(np.float32)
    if (
        raw.min() < -1e-4
        or raw.max() > 1 + 1e-4
        or (not multi_label and abs(float(raw.sum()) - 1) > 1e-2)
    ):
        raise OutputMismatchError(
            f"head yolov8_cls with activation 'none' expects probabilities "
            f"({'each in 0..1' if multi_label else 'summing to 1'}), the model gave values in "
            f"[{raw.min():.3g}, {raw.max():.3g}] summing to {raw.sum():.3g}: these are logits; "
            f"set head.activation "
            f"to {'sigmoid' if multi_label else 'softmax'} in the manifest"
        )
    return raw


def decode_rfdetr(
    outputs: Sequence[np.ndarray],
    head: HeadSpec,
    num_classes: int,
    confidence: float,
    allowed: np.ndarray | None,
    num_select: int = 300,
) -> TaskCandidates:
    """Top-k over sigmoid(logits) of every (query, class) pair, as RF-DETR's PostProcess does.

    Boxes stay normalised (0-1 cx cy w h -> xyxy); the caller scales them to the frame.
    With ``nc + 1`` logit columns the last one is the background slot and is ignored
    (RF-DETR's default ``background_class_id=-1``). Pairs scoring at or below the
    threshold are dropped; ties keep the lower (query, class) index first.
    """
    boxes = np.asarray(outputs[0], dtype=np.float32)[0]  # (Q, 4)
    logits = np.asarray(outputs[1], dtype=np.float32)[0][:, :num_classes]  # (Q, nc)
    probabilities = sigmoid(logits)
    if allowed is not None:
        blocked = np.ones(num_classes, bool)
        blocked[allowed] = False
        probabilities[:, blocked] = 0.0
    flat = probabilities.reshape(-1)
    k = min(num_select, flat.size)
    top = np.argsort(-flat, kind="stable")[:k]
    top = top[flat[top] > confidence]
    queries, class_ids = np.divmod(top, num_classes)
    cx, cy, w, h = boxes[queries].T
    extra = (
        np.asarray(outputs[2], dtype=np.float32)[0][queries]
        if head.type == "rfdetr_seg"
        else queries[:, None]
    )
    return TaskCandidates(
        _cxcywh_to_xyxy(cx, cy, w, h),
        flat[top].astype(np.float32),
        class_ids.astype(np.int64),
        extra,
    )
