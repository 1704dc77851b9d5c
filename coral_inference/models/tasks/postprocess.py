"""Decoded task candidates -> ``sv.Detections`` in frame pixels (or a ``ClassificationResult``).

``Detector.postprocess`` hands every head other than the plain box heads to
``postprocess_task``: confidence filter, class-aware NMS (rotated for OBB, none
for RF-DETR), then the mapping back through the resize geometry — masks only for
the boxes kept, keypoints with their confidences, oriented boxes as corner
polygons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import supervision as sv

from coral_inference.models.errors import OutputMismatchError
from coral_inference.models.nms import nms
from coral_inference.models.package import TASK_HEADS, HeadSpec, ModelPackage
from coral_inference.models.preprocess import ResizeGeometry
from coral_inference.models.tasks.heads import (
    LayoutContext,
    TaskCandidates,
    check_layout,
    classification_scores,
    decode_obb,
    decode_pose,
    decode_rfdetr,
    decode_seg,
)
from coral_inference.models.tasks.masks import masks_in_boxes, prototype_masks
from coral_inference.models.tasks.obb import corners, rotated_nms
from coral_inference.models.tasks.results import (
    KEYPOINTS_CONFIDENCE,
    KEYPOINTS_XY,
    ORIENTED_BOX_COORDINATES,
    ClassificationResult,
)

if TYPE_CHECKING:
    from coral_inference.models.package import InputSpec

# Head types this module decodes (everything but the plain YOLO box heads).
TASK_HEAD_TYPES = frozenset({t for types in TASK_HEADS.values() for t in types} | {"rfdetr"})


def layout_context(package: ModelPackage, input_spec: InputSpec) -> LayoutContext:
    keypoints = package.manifest.keypoints
    return LayoutContext(
        num_classes=len(package.classes),
        input_wh=(input_spec.width, input_spec.height),
        num_keypoints=len(keypoints.names) if keypoints is not None else 0,
    )


def check_outputs(
    package: ModelPackage, head: HeadSpec, input_spec: InputSpec, shapes: Sequence[Sequence[int]]
) -> None:
    """Refuse (``OutputMismatchError``) outputs that do not fit the declared task head."""
    if head.type in TASK_HEAD_TYPES:
        check_layout(
            head,
            shapes,
            layout_context(package, input_spec),
            f"model {package.name!r} ({package.root})",
        )


def session_output_shapes(session: object) -> list[list[int]] | None:
    """Output shapes a session declares (dynamic dims -1); None if it cannot tell before running."""
    declared = getattr(session, "output_shapes", None)
    if declared is not None:
        return [list(shape) for shape in declared]
    runtime: Any = getattr(session, "inference_session", None)
    if runtime is None or not hasattr(runtime, "get_outputs"):
        return None
    return [
        [d if isinstance(d, int) else -1 for d in (o.shape or [])] for o in runtime.get_outputs()
    ]


def _class_name_data(names: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    return names[class_ids] if len(class_ids) else np.zeros(0, dtype=names.dtype)


def postprocess_task(
    package: ModelPackage,
    head: HeadSpec,
    input_spec: InputSpec,
    outputs: Sequence[np.ndarray],
    geometry: ResizeGeometry,
    allowed: np.ndarray | None,
    *,
    confidence: float,
    iou: float,
    max_detections: int,
    agnostic: bool,
    max_candidates: int,
) -> tuple[sv.Detections, int]:
    """(detections at source coordinates, number of candidates that reached NMS)."""
    ctx = layout_context(package, input_spec)
    shapes = [list(np.shape(o)) for o in outputs]
    check_layout(head, shapes, ctx, f"model {package.name!r}")
    names = np.asarray(package.classes)
    if head.type == "yolov8_cls":
        raise OutputMismatchError(
            f"model {package.name!r} is a classification model (head yolov8_cls): "
            f"call classify(), not detect()"
        )
    nc = ctx.num_classes
    if allowed is not None and allowed.size == 0:
        return empty_detections(head, geometry, ctx.num_keypoints, names), 0
    if head.type in ("rfdetr", "rfdetr_seg"):
        queries = int(np.shape(outputs[0])[1])  # RF-DETR's exported decoders select up to Q pairs
        candidates = decode_rfdetr(outputs, head, nc, confidence, allowed, num_select=queries)
        return _rfdetr_detections(candidates, head, geometry, names, max_detections), len(
            candidates
        )
    if head.type in ("yolov8_seg", "yolov8_seg_dfl"):
        candidates = decode_seg(outputs, head, nc, confidence, allowed)
    elif head.type in ("yolov8_pose", "yolov8_pose_dfl"):
        candidates = decode_pose(outputs, head, nc, ctx.num_keypoints, confidence, allowed)
    else:
        candidates = decode_obb(outputs, nc, confidence, allowed)
    candidates = candidates.top(max_candidates)
    reached = len(candidates)
    class_ids = None if agnostic else candidates.class_ids
    if head.type == "yolov8_obb":
        keep = rotated_nms(candidates.extra, candidates.scores, iou, class_ids, max_detections)
    else:
        keep = nms(
            candidates.xyxy,
            candidates.scores,
            iou,
            class_ids=class_ids,
            max_detections=max_detections,
        )
    kept = candidates.take(keep)
    if head.type == "yolov8_obb":
        return _obb_detections(kept, geometry, names), reached
    xyxy = geometry.to_source(kept.xyxy)
    data: dict[str, Any] = {"class_name": _class_name_data(names, kept.class_ids)}
    mask = None
    if kept.prototypes is not None:
        # Ultralytics drops instances whose cropped mask is empty
        mask, nonempty = prototype_masks(kept.prototypes, kept.extra, xyxy, geometry, ctx.input_wh)
        if nonempty.size != len(kept):
            xyxy = xyxy[nonempty]
            kept = kept.take(nonempty)
            data["class_name"] = _class_name_data(names, kept.class_ids)
    else:
        points = kept.extra
        data[KEYPOINTS_XY] = keypoints_to_source(points[..., :2], geometry)
        data[KEYPOINTS_CONFIDENCE] = (
            points[..., 2].astype(np.float32)
            if points.shape[-1] > 2
            else np.ones(points.shape[:2], np.float32)
        )
    detections = sv.Detections(
        xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4),
        mask=mask,
        confidence=kept.scores.astype(np.float32),
        class_id=kept.class_ids.astype(np.int64),
        data=data,
    )
    return detections, reached


def empty_detections(
    head: HeadSpec, geometry: ResizeGeometry, num_keypoints: int, names: np.ndarray
) -> sv.Detections:
    """No detections, with the task's empty payload (mask, keypoints, polygons) shaped right."""
    data: dict[str, Any] = {"class_name": np.zeros(0, dtype=names.dtype)}
    mask = None
    if head.type in TASK_HEADS["instance-segmentation"]:
        mask = np.zeros((0, geometry.src_h, geometry.src_w), bool)
    elif head.type in TASK_HEADS["keypoint-detection"]:
        data[KEYPOINTS_XY] = np.zeros((0, num_keypoints, 2), np.float32)
        data[KEYPOINTS_CONFIDENCE] = np.zeros((0, num_keypoints), np.float32)
    elif head.type == "yolov8_obb":
        data[ORIENTED_BOX_COORDINATES] = np.zeros((0, 4, 2), np.float32)
        data["xywhr"] = np.zeros((0, 5), np.float32)
    return sv.Detections(
        xyxy=np.zeros((0, 4), np.float32),
        mask=mask,
        confidence=np.zeros(0, np.float32),
        class_id=np.zeros(0, np.int64),
        data=data,
    )


def keypoints_to_source(points_xy: np.ndarray, geometry: ResizeGeometry) -> np.ndarray:
    """``(n, K, 2)`` input pixels -> frame pixels, clipped to the frame."""
    out = np.asarray(points_xy, dtype=np.float32).copy()
    out[..., 0] = (out[..., 0] - geometry.pad_left) * (geometry.src_w / geometry.new_w)
    out[..., 1] = (out[..., 1] - geometry.pad_top) * (geometry.src_h / geometry.new_h)
    np.clip(out[..., 0], 0, geometry.src_w, out=out[..., 0])
    np.clip(out[..., 1], 0, geometry.src_h, out=out[..., 1])
    return out


def obb_to_source(xywhr: np.ndarray, geometry: ResizeGeometry) -> np.ndarray:
    """Rotated boxes from input to frame pixels (centre shifted, sides scaled; not clipped)."""
    out = np.asarray(xywhr, dtype=np.float32).reshape(-1, 5).copy()
    gain_x, gain_y = geometry.src_w / geometry.new_w, geometry.src_h / geometry.new_h
    out[:, 0] = (out[:, 0] - geometry.pad_left) * gain_x
    out[:, 1] = (out[:, 1] - geometry.pad_top) * gain_y
    out[:, 2] *= gain_x
    out[:, 3] *= gain_y
    return out


def _obb_detections(
    kept: TaskCandidates, geometry: ResizeGeometry, names: np.ndarray
) -> sv.Detections:
    xywhr = obb_to_source(kept.extra, geometry)
    polygons = corners(xywhr)
    xyxy = (
        np.concatenate([polygons.min(axis=1), polygons.max(axis=1)], axis=1)
        if len(polygons)
        else np.zeros((0, 4))
    )
    return sv.Detections(
        xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4),
        confidence=kept.scores.astype(np.float32),
        class_id=kept.class_ids.astype(np.int64),
        data={
            "class_name": _class_name_data(names, kept.class_ids),
            ORIENTED_BOX_COORDINATES: polygons,
            "xywhr": xywhr,
        },
    )


def _rfdetr_detections(
    candidates: TaskCandidates,
    head: HeadSpec,
    geometry: ResizeGeometry,
    names: np.ndarray,
    max_detections: int,
) -> sv.Detections:
    kept = candidates.take(np.arange(min(len(candidates), max_detections)))
    # Normalised boxes cover the whole (stretched) input, i.e. the whole frame.
    scale = np.asarray([geometry.src_w, geometry.src_h] * 2, np.float32)
    xyxy = np.clip(
        kept.xyxy * scale, 0.0, scale
    )  # regression is unbounded; RF-DETR clamps to the frame
    mask = None
    if head.type == "rfdetr_seg":
        full = ResizeGeometry(geometry.src_w, geometry.src_h, geometry.src_w, geometry.src_h, 0, 0)
        mask = masks_in_boxes(
            kept.extra.reshape(len(kept), *kept.extra.shape[1:]),
            xyxy,
            full,
            (geometry.src_w, geometry.src_h),
            crop=False,
        )
    return sv.Detections(
        xyxy=xyxy.reshape(-1, 4),
        mask=mask,
        confidence=kept.scores.astype(np.float32),
        class_id=kept.class_ids.astype(np.int64),
        data={"class_name": _class_name_data(names, kept.class_ids)},
    )


def classify_outputs(
    package: ModelPackage, head: HeadSpec, input_spec: InputSpec, outputs: Sequence[np.ndarray]
) -> ClassificationResult:
    if head.type != "yolov8_cls":
        raise OutputMismatchError(
            f"model {package.name!r} has task {package.manifest.task!r} (head {head.type}): "
            f"classify() needs a classification model; use detect()"
        )
    check_layout(
        head,
        [list(np.shape(o)) for o in outputs],
        layout_context(package, input_spec),
        f"model {package.name!r}",
    )
    scores = classification_scores(
        outputs, head, len(package.classes), package.manifest.multi_label
    )
    return ClassificationResult(
        list(package.classes), scores.astype(np.float32), package.manifest.multi_label
    )
