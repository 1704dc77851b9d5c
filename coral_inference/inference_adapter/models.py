"""The model-serving names Coral's registry needs (see the package docstring)."""

from __future__ import annotations

import coral_inference.inference_adapter  # noqa: F401  (loads inference.core first)
from inference.core.entities.responses.inference import (
    ClassificationInferenceResponse,
    InferenceResponseImage,
    InstanceSegmentationInferenceResponse,
    InstanceSegmentationPrediction,
    Keypoint,
    KeypointsDetectionInferenceResponse,
    KeypointsPrediction,
    MultiLabelClassificationInferenceResponse,
    ObjectDetectionInferenceResponse,
    ObjectDetectionPrediction,
    Point,
)
from inference.core.exceptions import ModelNotRecognisedError
from inference.core.managers.base import ModelManager
from inference.core.models.base import Model
from inference.core.registries.base import ModelRegistry
from inference.core.registries.roboflow import RoboflowModelRegistry
from inference.core.utils.image_utils import load_image_bgr

__all__ = [
    "ClassificationInferenceResponse",
    "InferenceResponseImage",
    "InstanceSegmentationInferenceResponse",
    "InstanceSegmentationPrediction",
    "Keypoint",
    "KeypointsDetectionInferenceResponse",
    "KeypointsPrediction",
    "MultiLabelClassificationInferenceResponse",
    "Model",
    "ModelManager",
    "ModelNotRecognisedError",
    "ModelRegistry",
    "ObjectDetectionInferenceResponse",
    "ObjectDetectionPrediction",
    "Point",
    "RoboflowModelRegistry",
    "load_image_bgr",
]


def roboflow_model_types() -> dict:
    """inference's table of Roboflow model types (importing it loads every model family)."""
    from inference.models.utils import ROBOFLOW_MODEL_TYPES  # heavy: imports all model classes

    return ROBOFLOW_MODEL_TYPES
