"""Coral model packages as models of Roboflow ``inference``: ``coral/<name>`` model ids.

Users' existing workflows use ``roboflow_core/roboflow_object_detection_model@v2``
with a model id. Two ways make ``coral/<name>`` ids run Coral packages there:

* **You build the pipeline** (``InferencePipeline.init_with_workflow``,
  ``ExecutionEngine.init``, Coral's ``PipelineRunner``): pass
  ``coral_model_manager(context)`` as the model manager. This is inference's
  public extension point (a ``ModelRegistry`` given to ``ModelManager``); other
  model ids go on to Roboflow's registry as usual.
* **inference builds it** (``inference server start``, the Docker image): nothing
  can be handed in, so the ``coral_model_registry`` patch
  (``coral_inference.patches.model_registry``) teaches ``RoboflowModelRegistry``
  the same ids. Enable it with ``patches: {coral_model_registry: true}``.

Either way the model is the context's cached ``LoadedModel``: a Coral block and a
core block using the same package share one session. An id ``coral/<name>``
is claimed only when ``<name>`` is a Coral package (config name, bundled name or
directory), so a Roboflow project that happens to be called "coral" still works.

Every task answers with inference's own response types: detection, instance
segmentation (polygons), keypoints, single- and multi-label classification
(``coral_inference.models.inference_responses``), so
``roboflow_instance_segmentation_model``, ``roboflow_keypoint_detection_model`` and
``roboflow_classification_model`` / ``roboflow_multi_label_classification_model`` take
``coral/<name>`` ids as the detection block does.

Roboflow ``inference`` is imported only inside these functions (through
``coral_inference.inference_adapter``); importing this module imports nothing of it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from coral_inference.models import inference_responses as responses
from coral_inference.models.catalog import ModelCatalog
from coral_inference.models.errors import ModelTaskMismatchError, PackageNotFoundError
from coral_inference.models.loaded import (
    CORAL_MODEL_ID_PREFIX,
    LoadedModel,
    resolve_reference,
    strip_model_id,
)


class CoralModelHost(Protocol):
    """What serving Coral packages to inference needs; ``RuntimeContext`` is one."""

    @property
    def catalog(self) -> ModelCatalog: ...

    @property
    def inference_model_class(self) -> type:
        """This host's one ``coral_model_class`` (built by ``build_model_class``)."""
        ...

    def get_model(self, name: str, backend: str | None = None) -> LoadedModel: ...


DEFAULTS = {"confidence": 0.4, "iou_threshold": 0.3, "max_detections": 300, "max_candidates": 3000}


def is_coral_model_id(context: CoralModelHost, model_id: str) -> bool:
    """True when ``model_id`` is ``coral/<name>`` and ``<name>`` resolves to a Coral package."""
    if not isinstance(model_id, str) or not model_id.startswith(CORAL_MODEL_ID_PREFIX):
        return False
    try:
        resolve_reference(context.catalog, model_id)
    except PackageNotFoundError:
        return False
    return True


def coral_model_class(context: CoralModelHost) -> type:
    """The inference ``Model`` class serving Coral packages of ``context`` (one per context)."""
    return context.inference_model_class


def coral_model_registry(context: CoralModelHost, fallback: Any = "roboflow") -> Any:
    """A ``ModelRegistry`` resolving ``coral/<name>``; other ids go to ``fallback``.

    ``fallback`` is ``"roboflow"`` (inference's own ``RoboflowModelRegistry``), another
    registry, or ``None`` (only Coral models).
    """
    # heavy: the adapter imports Roboflow inference (~12 s)
    from coral_inference.inference_adapter import models as adapter

    model_registry_base = adapter.ModelRegistry
    model_not_recognised = adapter.ModelNotRecognisedError
    if fallback == "roboflow":
        fallback = adapter.RoboflowModelRegistry(adapter.roboflow_model_types())
    model_class = coral_model_class(context)

    class CoralModelRegistry(model_registry_base):
        """Coral packages for ``coral/<name>`` ids, the fallback registry for the rest."""

        def __init__(self) -> None:
            super().__init__({"coral/object-detection": model_class})
            self.fallback = fallback

        # inference's RoboflowModelRegistry overrides ModelRegistry.get_model with these names too
        def get_model(self, model_id: str, api_key: str | None = None, **kwargs: Any) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
            if is_coral_model_id(context, model_id):
                return model_class
            if self.fallback is None:
                raise model_not_recognised(
                    f"{model_id!r} is not a Coral model id (coral/<package name>) and this registry "
                    f"has no fallback registry for other models"
                )
            return self.fallback.get_model(model_id, api_key, **kwargs)

    return CoralModelRegistry()


def coral_model_manager(context: CoralModelHost, fallback: Any = "roboflow") -> Any:
    """A ``ModelManager`` over ``coral_model_registry``: pass it where inference takes one.

    >>> manager = coral_model_manager(context)  # doctest: +SKIP
    >>> InferencePipeline.init_with_workflow(..., model_manager=manager)  # doctest: +SKIP
    """
    # heavy: the adapter imports Roboflow inference (~12 s)
    from coral_inference.inference_adapter import models as adapter

    return adapter.ModelManager(model_registry=coral_model_registry(context, fallback))


# package task -> the Coral block that runs it
CORAL_BLOCKS = {
    "object-detection": "coral/object_detection_model@v1",
    "obb": "coral/object_detection_model@v1",
    "instance-segmentation": "coral/instance_segmentation_model@v1",
    "keypoint-detection": "coral/keypoint_detection_model@v1",
    "classification": "coral/classification_model@v1",
}
# inference request class -> the package tasks that can answer it
_REQUEST_TASKS = {
    "ObjectDetectionInferenceRequest": (
        "object-detection",
        "instance-segmentation",
        "keypoint-detection",
    ),
    "InstanceSegmentationInferenceRequest": ("instance-segmentation",),
    "KeypointsDetectionInferenceRequest": ("keypoint-detection",),
    "ClassificationInferenceRequest": ("classification",),
}


def build_model_class(context: CoralModelHost) -> type:
    # heavy: the adapter imports Roboflow inference (~12 s)
    from coral_inference.inference_adapter import models as adapter

    class CoralPackageModel(adapter.Model):
        """An inference ``Model`` answering requests with a Coral package, per its task.

        Detection, instance-segmentation, keypoint and classification requests get
        inference's own response types (``coral_inference.models.inference_responses``),
        so the core blocks' post-processing yields what Coral's blocks emit. A request the
        package's task cannot answer (an OBB package has no rotated boxes in Roboflow's
        responses) is refused with ``ModelTaskMismatchError`` naming the Coral block to use.
        """

        task_type = "object-detection"  # each instance: its package's task

        def __init__(self, model_id: str, api_key: str | None = None, **_: Any):
            self.model_id = model_id
            self.endpoint = model_id
            self.api_key = api_key
            self.loaded = context.get_model(strip_model_id(model_id))
            self.class_names = list(self.loaded.package.classes)
            self.task_type = self.loaded.task

        def infer_from_request(self, request: Any) -> Any:
            start = time.perf_counter()
            self._check_task(request)
            images = request.image if isinstance(request.image, list) else [request.image]
            frames = [adapter.load_image_bgr(image) for image in images]
            if self.task_type == "classification":
                results = self.loaded.classify_batch(frames)
                confidence = getattr(request, "confidence", None)
                threshold = float(confidence) if isinstance(confidence, (int, float)) else 0.4
                elapsed = time.perf_counter() - start
                out = [
                    responses.classification_response(
                        result,
                        frame.shape[:2],
                        threshold,
                        getattr(request, "id", None) or str(uuid.uuid4()),
                        elapsed,
                    )
                    for frame, result in zip(frames, results)
                ]
            else:
                results = self.loaded.detect_batch(frames, **self._options(request))
                elapsed = time.perf_counter() - start
                out = [
                    self._response(frame, detections, request, elapsed)
                    for frame, detections in zip(frames, results)
                ]
            return out if isinstance(request.image, list) else out[0]

        def _check_task(self, request: Any) -> None:

            kind = type(request).__name__
            tasks = _REQUEST_TASKS.get(kind)
            if tasks is not None and self.task_type in tasks:
                return
            block = CORAL_BLOCKS.get(self.task_type, "coral/object_detection_model@v1")
            raise ModelTaskMismatchError(
                f"{self.model_id}: a package of task {self.task_type!r} cannot answer an {kind}; "
                f"use a core block of that task or {block}"
            )

        def _options(self, request: Any) -> dict[str, Any]:
            def number(name: str) -> Any:
                value = getattr(request, name, None)
                return (
                    value
                    if isinstance(value, (int, float)) and not isinstance(value, bool)
                    else DEFAULTS[name]
                )

            requested = getattr(request, "class_filter", None)
            # inference semantics: names the model does not know simply match nothing.
            class_filter = [c for c in requested if c in self.class_names] if requested else None
            return {
                "confidence": float(number("confidence")),
                "iou": float(number("iou_threshold")),
                "max_detections": int(number("max_detections")),
                "max_candidates": int(number("max_candidates")),
                "agnostic": bool(getattr(request, "class_agnostic_nms", False)),
                "class_filter": class_filter,
            }

        def _response(self, frame: Any, detections: Any, request: Any, elapsed: float) -> Any:
            common = {
                "inference_id": getattr(request, "id", None) or str(uuid.uuid4()),
                "time": elapsed,
            }
            size = frame.shape[:2]
            kind = type(request).__name__
            if kind == "InstanceSegmentationInferenceRequest":
                return responses.segmentation_response(detections, size, **common)
            if kind == "KeypointsDetectionInferenceRequest":
                threshold = getattr(request, "keypoint_confidence", None)
                keypoints = self.loaded.package.manifest.keypoints
                # _check_task let only keypoint-detection packages through; their manifest has keypoints
                assert keypoints is not None
                names = list(keypoints.names)
                return responses.keypoints_response(
                    detections,
                    size,
                    names,
                    float(threshold) if isinstance(threshold, (int, float)) else 0.0,
                    **common,
                )
            return responses.detection_response(detections, size, **common)

        def clear_cache(self, delete_from_disk: bool = True) -> None:
            """The session belongs to the Coral runtime context; ``shutdown()`` closes it."""

    return CoralPackageModel
