# pyright: reportInvalidTypeForm=false, reportIncompatibleVariableOverride=false
# (Selector(kind=[...]) in annotations and type: Literal[...] narrowing the base
# manifest's type: str, as in Roboflow's own blocks)
"""``coral/object_detection_model@v1``: run a Coral model package on the NPU or ONNX Runtime."""

from __future__ import annotations

import uuid
from typing import Literal

import numpy as np
import supervision as sv
from pydantic import ConfigDict, Field, PositiveInt

from coral_inference.inference_adapter.workflows import (
    Batch,
    BlockResult,
    OutputDefinition,
    Selector,
    WorkflowBlock,
    WorkflowBlockManifest,
    WorkflowImageData,
    attach_parents_coordinates_to_batch_of_sv_detections,
    attach_prediction_type_info_to_sv_detections_batch,
    kinds,
)
from coral_inference.models.loaded import CORAL_MODEL_ID_PREFIX
from coral_inference.runtime.context import RuntimeContext
from coral_workflows.blocks.model_support import load_for_task

# Tasks whose packages yield boxes (segmentation and keypoint packages give their boxes too).
DETECTION_TASKS = ("object-detection", "obb", "instance-segmentation", "keypoint-detection")

LONG_DESCRIPTION = """
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

**Backend**: `auto` takes the configured backend of the model, else the first
backend of `backends.order` that is available here and has an artifact in the
package; or name one (`rknn`, `onnxruntime`, or a third-party backend).

The session is created on the first frame and kept by the Coral runtime, so
every step and workflow using the same model shares it (on RK3588 a pool with
one session per NPU core, which a batch of frames from several cameras uses in
parallel). Predictions are ordinary object-detection predictions: trackers,
line counters, zones, visualisations and sinks take them as they take those of
Roboflow's own model blocks.
"""


class BlockManifest(WorkflowBlockManifest):
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
    images: Selector(kind=[kinds.IMAGE_KIND]) = Field(
        title="Image",
        description="The images to detect objects on.",
        examples=["$inputs.image", "$steps.cropping.crops"],
    )
    model: Selector(kind=[kinds.STRING_KIND]) | str = Field(
        description="Model name from the Coral config, a bundled package name or a package "
        "directory.",
        examples=["coral-demo", "/opt/models/people-v3", "$inputs.model"],
    )
    backend: Selector(kind=[kinds.STRING_KIND]) | str = Field(
        default="auto",
        description="Backend to run on: auto, rknn, onnxruntime or a registered third-party "
        "backend.",
        examples=["auto", "rknn", "$inputs.backend"],
    )
    confidence: kinds.FloatZeroToOne | Selector(kind=[kinds.FLOAT_ZERO_TO_ONE_KIND]) = Field(
        default=0.4,
        description="Lowest confidence a prediction may have.",
        examples=[0.3, "$inputs.confidence"],
    )
    iou_threshold: kinds.FloatZeroToOne | Selector(kind=[kinds.FLOAT_ZERO_TO_ONE_KIND]) = Field(
        default=0.3,
        description="Overlap (IoU) above which non-maximum suppression drops the lower-scoring "
        "box.",
        examples=[0.45, "$inputs.iou_threshold"],
    )
    class_filter: list[str] | None | Selector(kind=[kinds.LIST_OF_VALUES_KIND]) = Field(
        default=None,
        description="Classes to keep (names from the model's classes); all when empty.",
        examples=[["person", "car"], "$inputs.class_filter"],
    )
    max_detections: PositiveInt | Selector(kind=[kinds.INTEGER_KIND]) = Field(
        default=300,
        description="Most predictions returned per image.",
        examples=[100, "$inputs.max_detections"],
    )
    class_agnostic_nms: bool | Selector(kind=[kinds.BOOLEAN_KIND]) = Field(
        default=False,
        description="Suppress overlapping boxes across classes, not only within a class.",
        examples=[True, "$inputs.class_agnostic_nms"],
    )

    @classmethod
    def get_parameters_accepting_batches(cls) -> list[str]:
        return ["images"]

    @classmethod
    def describe_outputs(cls) -> list[OutputDefinition]:
        return [
            OutputDefinition(name="inference_id", kind=[kinds.INFERENCE_ID_KIND]),
            OutputDefinition(name="predictions", kind=[kinds.OBJECT_DETECTION_PREDICTION_KIND]),
            OutputDefinition(name="model_id", kind=[kinds.ROBOFLOW_MODEL_ID_KIND]),
        ]

    @classmethod
    def get_execution_engine_compatibility(cls) -> str | None:
        return ">=1.3.0,<2.0.0"


class CoralObjectDetectionModelBlockV1(WorkflowBlock):
    """Validates inputs, asks the Coral runtime for the model, shapes Workflows predictions."""

    def __init__(self, coral_context: RuntimeContext):
        self._context = coral_context

    @classmethod
    def get_init_parameters(cls) -> list[str]:
        return ["coral_context"]

    @classmethod
    def get_manifest(cls) -> type[WorkflowBlockManifest]:
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
        batch: list[sv.Detections] = loaded.detect_batch(
            [image.numpy_image for image in images],
            confidence=confidence,
            iou=iou_threshold,
            class_filter=class_filter or None,
            max_detections=max_detections,
            agnostic=bool(class_agnostic_nms),
        )
        inference_ids = [str(uuid.uuid4()) for _ in batch]
        for detections, image, inference_id in zip(batch, images, inference_ids):
            height, width = image.numpy_image.shape[:2]
            count = len(detections)
            detections["detection_id"] = np.array(
                [str(uuid.uuid4()) for _ in range(count)], dtype=object
            )
            detections["inference_id"] = np.array([inference_id] * count, dtype=object)
            detections["image_dimensions"] = np.array([[height, width]] * count, dtype=int).reshape(
                count, 2
            )
            detections.metadata["image_dimensions"] = [height, width]
        batch = attach_prediction_type_info_to_sv_detections_batch(
            predictions=batch, prediction_type="object-detection"
        )
        batch = attach_parents_coordinates_to_batch_of_sv_detections(
            predictions=batch, images=images
        )
        model_id = f"{CORAL_MODEL_ID_PREFIX}{loaded.package.name}"
        return [
            {"inference_id": inference_id, "predictions": detections, "model_id": model_id}
            for detections, inference_id in zip(batch, inference_ids)
        ]
