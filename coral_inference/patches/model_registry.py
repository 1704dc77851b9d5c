"""Patch ``coral_model_registry``: ``coral/<name>`` model ids inside inference's own registry.

Why a patch: an inference server started by the user (``inference server start``,
the Docker image) builds its ``ModelManager`` over ``RoboflowModelRegistry`` itself;
there is no hook to hand it another registry. Where the caller builds the pipeline,
use ``coral_inference.models.inference_registry.coral_model_manager`` instead — it is
inference's public extension point and needs no patch.

What it replaces: ``RoboflowModelRegistry.get_model``. The replacement returns
Coral's model class for ``coral/<name>`` when ``<name>`` is a Coral package of the
runtime context, and calls the original for every other id (so a Roboflow project
called "coral" still resolves). ``disable`` restores the original function.

Every task goes this one way: the model class answers detection, instance-segmentation,
keypoint and (single- or multi-label) classification requests with inference's own
response types, so ``roboflow_instance_segmentation_model``,
``roboflow_keypoint_detection_model`` and ``roboflow_classification_model`` take
``coral/<name>`` ids as ``roboflow_object_detection_model`` does.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

from coral_inference.patches.base import Patch

if TYPE_CHECKING:  # patches sit below the runtime: the context is an annotation here
    from coral_inference.runtime.context import RuntimeContext

TARGET = "inference.core.registries.roboflow:RoboflowModelRegistry.get_model"


def _replace_get_model(original: Any, context: RuntimeContext | None) -> Any:
    # heavy: inference_registry loads supervision, scipy, cv2, requests (~3.7 s)
    from coral_inference.models.inference_registry import coral_model_class, is_coral_model_id

    @functools.wraps(original)
    def get_model(
        self: Any, model_id: str, api_key: str | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        if context is not None and is_coral_model_id(context, model_id):
            return coral_model_class(context)
        return original(self, model_id, api_key, *args, **kwargs)

    cast(Any, get_model).__coral_patch__ = "coral_model_registry"  # a marker attribute
    return get_model


class CoralModelRegistryPatch(Patch):
    name = "coral_model_registry"
    description = (
        "coral/<name> model ids in inference's RoboflowModelRegistry, so core model blocks "
        "(roboflow_core/roboflow_object_detection_model and the instance segmentation, keypoint "
        "and classification ones) run Coral packages inside an inference server Coral did not build"
    )
    supported = ">=1.3,<2"
    default_enabled = False
    replacements = {TARGET: _replace_get_model}
