# pyright: reportInvalidTypeForm=false, reportIncompatibleVariableOverride=false
"""``coral/instance_segmentation_model@v1``: Coral segmentation packages on the NPU or ONNX Runtime."""

from __future__ import annotations

from typing import Literal, cast

from pydantic import ConfigDict

from coral_inference.inference_adapter.workflows import (
    Batch,
    BlockResult,
    OutputDefinition,
    WorkflowImageData,
    kinds,
)
from coral_workflows.blocks.model_support import (
    BACKEND_HELP,
    SESSION_HELP,
    CoralDetectionManifest,
    CoralModelBlock,
    detect,
    detection_outputs,
    load_for_task,
)

TASKS = ("instance-segmentation",)

LONG_DESCRIPTION = f"""
Segment objects with a **Coral model package** running on the edge box itself: the
Rockchip NPU (RKNN Lite) when the board has one, ONNX Runtime otherwise. No API key and
no network are needed.

**Model**: an instance-segmentation package (Ultralytics YOLOv8/11-seg, the
rknn_model_zoo split layout, RF-DETR-seg; `coral-demo-seg` is bundled): a name from the
`models` section of the Coral configuration, a bundled package name or a package
directory.

{BACKEND_HELP}

Predictions are instance-segmentation predictions — boxes with a full-resolution mask
per object — so mask and polygon visualisations, zones, trackers and sinks take them as
they take those of Roboflow's own segmentation block. {SESSION_HELP}
"""


class BlockManifest(CoralDetectionManifest):
    model_config = ConfigDict(
        json_schema_extra={
            "name": "Coral Instance Segmentation Model",
            "version": "v1",
            "short_description": "Segment objects on the edge box's NPU or ONNX Runtime with a Coral model package.",
            "long_description": LONG_DESCRIPTION,
            "license": "Apache-2.0",
            "block_type": "model",
            "search_keywords": [
                "coral",
                "rknn",
                "npu",
                "onnx",
                "yolo",
                "segmentation",
                "mask",
                "edge",
            ],
            "ui_manifest": {
                "section": "model",
                "icon": "far fa-chart-network",
                "blockPriority": 2,
                "inference": True,
            },
        },
        protected_namespaces=(),
    )
    type: Literal["coral/instance_segmentation_model@v1"]

    @classmethod
    def describe_outputs(cls) -> list[OutputDefinition]:
        return [
            OutputDefinition(name="inference_id", kind=[kinds.INFERENCE_ID_KIND]),
            OutputDefinition(
                name="predictions", kind=[kinds.INSTANCE_SEGMENTATION_PREDICTION_KIND]
            ),
            OutputDefinition(name="model_id", kind=[kinds.ROBOFLOW_MODEL_ID_KIND]),
        ]


class CoralInstanceSegmentationModelBlockV1(CoralModelBlock):
    """Runs a segmentation package through the Coral runtime; emits sv.Detections with masks."""

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
    ) -> BlockResult:
        loaded = load_for_task(
            self._context, model, backend, TASKS, "coral/instance_segmentation_model@v1"
        )
        batch = detect(
            loaded,
            images,
            confidence=confidence,
            iou_threshold=iou_threshold,
            class_filter=class_filter,
            max_detections=max_detections,
            class_agnostic_nms=class_agnostic_nms,
        )
        return cast(BlockResult, detection_outputs(batch, images, loaded, "instance-segmentation"))
