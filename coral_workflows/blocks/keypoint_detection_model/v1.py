# pyright: reportInvalidTypeForm=false, reportIncompatibleVariableOverride=false
"""``coral/keypoint_detection_model@v1``: Coral keypoint packages on the NPU or ONNX Runtime."""

from __future__ import annotations

from typing import Literal, cast

import numpy as np
import supervision as sv
from pydantic import ConfigDict, Field

from coral_inference.inference_adapter.workflows import (
    Batch,
    BlockResult,
    OutputDefinition,
    Selector,
    WorkflowImageData,
    kinds,
)
from coral_inference.models.tasks.results import KEYPOINTS_CONFIDENCE, KEYPOINTS_XY
from coral_workflows.blocks.model_support import (
    BACKEND_HELP,
    SESSION_HELP,
    CoralDetectionManifest,
    CoralModelBlock,
    detect,
    detection_outputs,
    load_for_task,
)

TASKS = ("keypoint-detection",)
# Roboflow's keys for keypoints in sv.Detections.data, and the class name of padding slots.
KEYPOINTS_CLASS_ID = "keypoints_class_id"
KEYPOINTS_CLASS_NAME = "keypoints_class_name"
PADDING_CLASS_NAME = ""

LONG_DESCRIPTION = f"""
Find objects and their keypoints with a **Coral model package** running on the edge box
itself: the Rockchip NPU (RKNN Lite) when the board has one, ONNX Runtime otherwise. No
API key and no network are needed.

**Model**: a keypoint-detection package (Ultralytics YOLOv8/11-pose or the
rknn_model_zoo split layout; `coral-demo-pose` is bundled). Keypoint names and the
skeleton come from the package's manifest.

{BACKEND_HELP}

Predictions are keypoint-detection predictions laid out as Roboflow's keypoint block
lays them out (`keypoints_xy`, `keypoints_confidence`, `keypoints_class_name`,
`keypoints_class_id` per object; keypoints below `keypoint_confidence` left out and the
rows padded), so keypoint visualisation and every other core block take them.
{SESSION_HELP}
"""


class BlockManifest(CoralDetectionManifest):
    model_config = ConfigDict(
        json_schema_extra={
            "name": "Coral Keypoint Detection Model",
            "version": "v1",
            "short_description": "Detect objects and their keypoints on the edge box's NPU or ONNX Runtime.",
            "long_description": LONG_DESCRIPTION,
            "license": "Apache-2.0",
            "block_type": "model",
            "search_keywords": [
                "coral",
                "rknn",
                "npu",
                "onnx",
                "yolo",
                "pose",
                "keypoints",
                "edge",
            ],
            "ui_manifest": {
                "section": "model",
                "icon": "far fa-chart-network",
                "blockPriority": 3,
                "inference": True,
            },
        },
        protected_namespaces=(),
    )
    type: Literal["coral/keypoint_detection_model@v1"]
    keypoint_confidence: kinds.FloatZeroToOne | Selector(
        kind=[kinds.FLOAT_ZERO_TO_ONE_KIND]
    ) = Field(
        default=0.0,
        description="Keypoints scoring below this are left out (as Roboflow's keypoint block does).",
        examples=[0.3, "$inputs.keypoint_confidence"],
    )

    @classmethod
    def describe_outputs(cls) -> list[OutputDefinition]:
        return [
            OutputDefinition(name="inference_id", kind=[kinds.INFERENCE_ID_KIND]),
            OutputDefinition(name="predictions", kind=[kinds.KEYPOINT_DETECTION_PREDICTION_KIND]),
            OutputDefinition(name="model_id", kind=[kinds.ROBOFLOW_MODEL_ID_KIND]),
        ]


def roboflow_keypoints(
    detections: sv.Detections, names: list[str], keypoint_confidence: float
) -> sv.Detections:
    """Coral's ``(n, K)`` keypoints -> Roboflow's data keys, in place.

    Keypoints scoring below ``keypoint_confidence`` are dropped, the kept ones move to the
    front of their row in model order (their ``class_id`` stays their index in ``names``),
    and rows are padded to the longest (zeros, class name ``""``), as inference's keypoint
    post-processing does.
    """
    count = len(detections)
    xy = np.asarray(detections.data.get(KEYPOINTS_XY, np.zeros((count, 0, 2))), dtype=np.float32)
    confidence = np.asarray(
        detections.data.get(KEYPOINTS_CONFIDENCE, np.zeros((count, 0))), dtype=np.float32
    )
    xy, confidence = xy.reshape(count, -1, 2), confidence.reshape(count, -1)
    keep = confidence >= keypoint_confidence
    order = np.argsort(~keep, axis=1, kind="stable")  # kept first, model order within each group
    width = int(keep.sum(axis=1).max(initial=0))
    order = order[:, :width]
    valid = np.take_along_axis(keep, order, axis=1)
    class_ids = np.where(valid, order, 0).astype(int)
    detections.data[KEYPOINTS_XY] = np.where(
        valid[..., None], np.take_along_axis(xy, order[..., None], axis=1), 0.0
    ).astype(np.float32)
    detections.data[KEYPOINTS_CONFIDENCE] = np.where(
        valid, np.take_along_axis(confidence, order, axis=1), 0.0
    ).astype(np.float32)
    detections.data[KEYPOINTS_CLASS_ID] = class_ids
    detections.data[KEYPOINTS_CLASS_NAME] = np.where(
        valid, np.asarray(names, dtype=object)[class_ids], PADDING_CLASS_NAME
    ).astype(object)
    return detections


class CoralKeypointDetectionModelBlockV1(CoralModelBlock):
    """Runs a keypoint package through the Coral runtime; emits Roboflow's keypoint predictions."""

    @classmethod
    def get_manifest(cls) -> type:
        return BlockManifest

    def run(
        self,
        images: Batch[WorkflowImageData],
        model: str,
        backend: str,
        confidence: float,
        iou_threshold: float,
        class_filter: list[str] | None,
        max_detections: int,
        class_agnostic_nms: bool,
        keypoint_confidence: float,
    ) -> BlockResult:
        loaded = load_for_task(
            self._context, model, backend, TASKS, "coral/keypoint_detection_model@v1"
        )
        names = list(loaded.package.manifest.keypoints.names)
        batch = detect(
            loaded,
            images,
            confidence=confidence,
            iou_threshold=iou_threshold,
            class_filter=class_filter,
            max_detections=max_detections,
            class_agnostic_nms=class_agnostic_nms,
        )
        batch = [roboflow_keypoints(detections, names, keypoint_confidence) for detections in batch]
        return cast(BlockResult, detection_outputs(batch, images, loaded, "keypoint-detection"))
