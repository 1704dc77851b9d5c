"""The model-serving names Coral's registry needs (see the package docstring).

Importing this submodule runs the package's ``__init__`` first, which loads
``inference.core`` (offline defaults, set-once configuration) before these imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inference.core.entities.responses.inference import (
    ClassificationInferenceResponse,
    Keypoint,
    KeypointsDetectionInferenceResponse,
    KeypointsPrediction,
    MultiLabelClassificationInferenceResponse,
    ObjectDetectionInferenceResponse,
    ObjectDetectionPrediction,
)
from inference.core.exceptions import ModelNotRecognisedError
from inference.core.managers.base import ModelManager
from inference.core.models.base import Model
from inference.core.registries.base import ModelRegistry
from inference.core.registries.roboflow import RoboflowModelRegistry
from inference.core.utils.image_utils import load_image_bgr

if TYPE_CHECKING:  # re-exported by inference's responses module from their canonical homes
    from roboflow_workflows.core_steps.common.inference_response_entities import (
        InferenceResponseImage,
        InstanceSegmentationInferenceResponse,
    )
    from roboflow_workflows.core_steps.common.segmentation_entities import (
        InstanceSegmentationPrediction,
        Point,
    )
else:
    from inference.core.entities.responses.inference import (
        InferenceResponseImage,
        InstanceSegmentationInferenceResponse,
        InstanceSegmentationPrediction,
        Point,
    )

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
