# pyright: reportIncompatibleVariableOverride=false
# (type: Literal[...] narrowing the base manifest's type: str, as in Roboflow's own blocks)
"""``coral/object_detection_model@v1``: run a Coral model package on the NPU or ONNX Runtime."""

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

# Tasks whose packages yield boxes (segmentation and keypoint packages give their boxes too).
DETECTION_TASKS = ("object-detection", "obb", "instance-segmentation", "keypoint-detection")

LONG_DESCRIPTION = f"""
Detect objects with a **Coral model package** running on the edge box itself:
the Rockchip NPU (RKNN Lite) when the board has one, ONNX Runtime (CPU, CUDA or
TensorRT) otherwise. No API key and no network are needed.

**Model**: a name from the `models` section of the Coral configuration, a
bundled package (`coral-demo`, the shape detector the demo uses) or the
directory of a package (`coral-model.yaml` plus its artifacts). The package says
how frames are resized (letterbox or stretch), normalised and decoded
(Ultralytics YOLOv8/11, rknn_model_zoo YOLOv8/11 DFL heads, YOLOv5 anchors,
RF-DETR). Oriented-box (OBB) packages give the rotated polygon of each box in the
predictions' `xyxyxyxy` data, where supervision keeps oriented boxes.

{BACKEND_HELP}

{SESSION_HELP} On RK3588 that is a pool with one session per NPU core, which a
batch of frames from several cameras uses in parallel. Predictions are ordinary
object-detection predictions: trackers, line counters, zones, visualisations and
sinks take them as they take those of Roboflow's own model blocks.
"""


class BlockManifest(CoralDetectionManifest):
    model_config = ConfigDict(
        json_schema_extra={
            "name": "Coral Object Detection Model",
            "version": "v1",
            "short_description": "Detect objects on the edge box's NPU or ONNX Runtime with a "
            "Coral model package.",
            "long_description": LONG_DESCRIPTION,
            "license": "Apache-2.0",
            "block_type": "model",
            "search_keywords": ["coral", "rknn", "npu", "onnx", "yolo", "edge"],
            "ui_manifest": {
                "section": "model",
                "icon": "far fa-microchip",
                "blockPriority": 1,
                "inference": True,
            },
        },
        protected_namespaces=(),
    )
    type: Literal["coral/object_detection_model@v1"]

    @classmethod
    def describe_outputs(cls) -> list[OutputDefinition]:
        return [
            OutputDefinition(name="inference_id", kind=[kinds.INFERENCE_ID_KIND]),
            OutputDefinition(name="predictions", kind=[kinds.OBJECT_DETECTION_PREDICTION_KIND]),
            OutputDefinition(name="model_id", kind=[kinds.ROBOFLOW_MODEL_ID_KIND]),
        ]


class CoralObjectDetectionModelBlockV1(CoralModelBlock):
    """Runs a package that gives boxes through the Coral runtime; emits object-detection predictions."""

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
        # OBB packages come out with the rotated polygon in data["xyxyxyxy"] (supervision's key);
        # RF-DETR packages decode here too. Classifiers are refused with the block to use.
        loaded = load_for_task(
            self._context, model, backend, DETECTION_TASKS, "coral/object_detection_model@v1"
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
        return cast(BlockResult, detection_outputs(batch, images, loaded, "object-detection"))
