# pyright: reportInvalidTypeForm=false
"""What Coral's model blocks share: manifest fields, the runtime call, the output shaping.

Each task block (object detection, instance segmentation, keypoints, classification)
declares only its ``type``, its descriptions and its output kind; the fields a user sets
(images, model, backend, thresholds) and the shaping of sv.Detections into Workflows
predictions — ids, image dimensions, prediction type, parent coordinates, exactly as
Roboflow's own model blocks attach them — live here once.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from pydantic import Field, PositiveInt

from coral_inference.inference_adapter.workflows import (
    Batch,
    Selector,
    WorkflowBlock,
    WorkflowBlockManifest,
    WorkflowImageData,
    attach_parents_coordinates_to_batch_of_sv_detections,
    attach_prediction_type_info_to_sv_detections_batch,
    kinds,
)
from coral_inference.models.errors import ModelTaskMismatchError
from coral_inference.models.inference_registry import CORAL_BLOCKS
from coral_inference.models.loaded import CORAL_MODEL_ID_PREFIX
from coral_inference.runtime.context import RuntimeContext


class CoralModelBlock(WorkflowBlock):
    """Base of the four model blocks: they all take the Coral runtime context, nothing else."""

    def __init__(self, coral_context: RuntimeContext):
        self._context = coral_context

    @classmethod
    def get_init_parameters(cls) -> list[str]:
        return ["coral_context"]


BACKEND_HELP = (
    "**Backend**: `auto` takes the configured backend of the model, else the first "
    "backend of `backends.order` that is available here and has an artifact in the "
    "package; or name one (`rknn`, `onnxruntime`, or a third-party backend)."
)
SESSION_HELP = (
    "The session is created on the first frame and kept by the Coral runtime, so every "
    "step and workflow using the same model shares it (a `coral/<name>` id in Roboflow's "
    "core model block included)."
)


class CoralModelManifest(WorkflowBlockManifest):
    """Fields of every Coral model block: the images, the package and where it runs."""

    images: Selector(kind=[kinds.IMAGE_KIND]) = Field(
        title="Image",
        description="The images to run the model on.",
        examples=["$inputs.image", "$steps.cropping.crops"],
    )
    model: Selector(kind=[kinds.STRING_KIND]) | str = Field(
        description="Model name from the Coral config, a bundled package name or a package directory.",
        examples=["coral-demo", "/opt/models/people-v3", "$inputs.model"],
    )
    backend: Selector(kind=[kinds.STRING_KIND]) | str = Field(
        default="auto",
        description="Backend to run on: auto, rknn, onnxruntime or a registered third-party backend.",
        examples=["auto", "rknn", "$inputs.backend"],
    )

    @classmethod
    def get_parameters_accepting_batches(cls) -> list[str]:
        return ["images"]

    @classmethod
    def get_execution_engine_compatibility(cls) -> str | None:
        return ">=1.3.0,<2.0.0"


class CoralDetectionManifest(CoralModelManifest):
    """Fields of the blocks that find objects (boxes, masks, keypoints)."""

    confidence: kinds.FloatZeroToOne | Selector(kind=[kinds.FLOAT_ZERO_TO_ONE_KIND]) = Field(
        default=0.4,
        description="Lowest confidence a prediction may have.",
        examples=[0.3, "$inputs.confidence"],
    )
    iou_threshold: kinds.FloatZeroToOne | Selector(kind=[kinds.FLOAT_ZERO_TO_ONE_KIND]) = Field(
        default=0.3,
        description="Overlap (IoU) above which non-maximum suppression drops the lower-scoring box.",
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


def model_id_of(loaded: Any) -> str:
    """The ``model_id`` output: ``coral/<package name>``, as a core block would name it."""
    return f"{CORAL_MODEL_ID_PREFIX}{loaded.package.name}"


def load_for_task(
    context: RuntimeContext, model: str, backend: str, tasks: tuple[str, ...], block: str
) -> Any:
    """The context's ``LoadedModel``, refused with the fix when its task is not one of ``tasks``."""

    loaded = context.get_model(model, backend=None if backend == "auto" else backend)
    task = loaded.task
    if task not in tasks:
        raise ModelTaskMismatchError(
            f"{block}: model {model!r} is a package of task {task!r}, this block runs "
            f"{' or '.join(tasks)} packages; use {CORAL_BLOCKS.get(task, 'the Coral block of its task')}"
        )
    return loaded


def detect(loaded: Any, images: Batch[WorkflowImageData], **options: Any) -> list[Any]:
    """``LoadedModel.detect_batch`` over the images' frames with the block's options."""
    return loaded.detect_batch(
        [image.numpy_image for image in images],
        confidence=options["confidence"],
        iou=options["iou_threshold"],
        class_filter=options["class_filter"] or None,
        max_detections=options["max_detections"],
        agnostic=bool(options["class_agnostic_nms"]),
    )


def detection_outputs(
    batch: list[Any], images: Batch[WorkflowImageData], loaded: Any, prediction_type: str
) -> list[dict[str, Any]]:
    """sv.Detections per image -> the outputs of a Roboflow detection-style model block."""
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
        predictions=batch, prediction_type=prediction_type
    )
    batch = attach_parents_coordinates_to_batch_of_sv_detections(predictions=batch, images=images)
    model_id = model_id_of(loaded)
    return [
        {"inference_id": inference_id, "predictions": detections, "model_id": model_id}
        for detections, inference_id in zip(batch, inference_ids)
    ]
