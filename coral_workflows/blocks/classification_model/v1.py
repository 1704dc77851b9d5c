# pyright: reportInvalidTypeForm=false, reportIncompatibleVariableOverride=false
"""``coral/classification_model@v1``: Coral classification packages on the NPU or ONNX Runtime."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import ConfigDict, Field

from coral_inference.inference_adapter.workflows import (
    Batch,
    BlockResult,
    OutputDefinition,
    Selector,
    WorkflowImageData,
    kinds,
)
from coral_inference.models.inference_responses import classification_response
from coral_workflows.blocks.model_support import (
    BACKEND_HELP,
    SESSION_HELP,
    CoralModelBlock,
    CoralModelManifest,
    load_for_task,
    model_id_of,
)

TASKS = ("classification",)

LONG_DESCRIPTION = f"""
Classify images with a **Coral model package** running on the edge box itself: the
Rockchip NPU (RKNN Lite) when the board has one, ONNX Runtime otherwise. No API key and
no network are needed.

**Model**: a classification package (Ultralytics YOLOv8/11-cls exports, single- or
multi-label; `coral-demo-cls` and `coral-demo-cls-multilabel` are bundled).

{BACKEND_HELP}

Predictions are classification predictions exactly as Roboflow's classification blocks
emit them: for a single-label model the classes scoring at least `confidence`, most
confident first, with `top` and `confidence`; for a multi-label model every class's
confidence and `predicted_classes` (those above `confidence`). Flow control, property
extraction and sinks take them as they take Roboflow's. {SESSION_HELP}
"""


class BlockManifest(CoralModelManifest):
    model_config = ConfigDict(
        json_schema_extra={
            "name": "Coral Classification Model",
            "version": "v1",
            "short_description": "Classify images on the edge box's NPU or ONNX Runtime with a Coral model package.",
            "long_description": LONG_DESCRIPTION,
            "license": "Apache-2.0",
            "block_type": "model",
            "search_keywords": ["coral", "rknn", "npu", "onnx", "yolo", "classification", "edge"],
            "ui_manifest": {
                "section": "model",
                "icon": "far fa-chart-network",
                "blockPriority": 4,
                "inference": True,
            },
        },
        protected_namespaces=(),
    )
    type: Literal["coral/classification_model@v1"]
    confidence: kinds.FloatZeroToOne | Selector(kind=[kinds.FLOAT_ZERO_TO_ONE_KIND]) = Field(
        default=0.4,
        description="Single-label: lowest confidence a listed class may have; multi-label: the threshold "
        "above which a class is predicted.",
        examples=[0.3, "$inputs.confidence"],
    )

    @classmethod
    def describe_outputs(cls) -> list[OutputDefinition]:
        return [
            OutputDefinition(name="inference_id", kind=[kinds.INFERENCE_ID_KIND]),
            OutputDefinition(name="predictions", kind=[kinds.CLASSIFICATION_PREDICTION_KIND]),
            OutputDefinition(name="model_id", kind=[kinds.ROBOFLOW_MODEL_ID_KIND]),
        ]


class CoralClassificationModelBlockV1(CoralModelBlock):
    """Runs a classification package through the Coral runtime; emits Roboflow's classification dicts."""

    @classmethod
    def get_manifest(cls) -> type:
        return BlockManifest

    def run(
        self, images: Batch[WorkflowImageData], model: str, backend: str, confidence: float
    ) -> BlockResult:
        loaded = load_for_task(
            self._context, model, backend, TASKS, "coral/classification_model@v1"
        )
        start = time.perf_counter()
        frames = [image.numpy_image for image in images]
        results = loaded.classify_batch(frames)
        elapsed = time.perf_counter() - start
        model_id = model_id_of(loaded)
        outputs = []
        for image, frame, result in zip(images, frames, results):
            inference_id = str(uuid.uuid4())
            response = classification_response(
                result, frame.shape[:2], confidence, inference_id, elapsed
            )
            prediction = response.model_dump(by_alias=True, exclude_none=True)
            prediction["prediction_type"] = "classification"
            prediction["parent_id"] = image.parent_metadata.parent_id
            prediction["root_parent_id"] = image.workflow_root_ancestor_metadata.parent_id
            outputs.append(
                {"inference_id": inference_id, "predictions": prediction, "model_id": model_id}
            )
        return outputs
