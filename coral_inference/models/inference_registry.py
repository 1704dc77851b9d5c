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

Roboflow ``inference`` is imported only inside these functions (through
``coral_inference.compat``); importing this module imports nothing of it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from coral_inference.models.catalog import ModelCatalog
from coral_inference.models.errors import PackageNotFoundError
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
    from coral_inference import compat

    model_registry_base = compat.get("ModelRegistry")
    model_not_recognised = compat.import_module("inference.core.exceptions").ModelNotRecognisedError
    if fallback == "roboflow":
        types = compat.import_module("inference.models.utils").ROBOFLOW_MODEL_TYPES
        fallback = compat.get("RoboflowModelRegistry")(types)
    model_class = coral_model_class(context)

    class CoralModelRegistry(model_registry_base):
        """Coral packages for ``coral/<name>`` ids, the fallback registry for the rest."""

        def __init__(self) -> None:
            super().__init__({"coral/object-detection": model_class})
            self.fallback = fallback

        def get_model(self, model_id: str, api_key: str | None = None, **kwargs: Any) -> Any:
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
    from coral_inference import compat

    return compat.get("ModelManager")(model_registry=coral_model_registry(context, fallback))


def build_model_class(context: CoralModelHost) -> type:
    from coral_inference import compat

    base = compat.import_module("inference.core.models.base").Model
    responses = compat.import_module("inference.core.entities.responses.inference")
    load_image_bgr = compat.import_module("inference.core.utils.image_utils").load_image_bgr

    class CoralPackageModel(base):
        """An inference ``Model`` answering object-detection requests with a Coral package."""

        task_type = "object-detection"

        def __init__(self, model_id: str, api_key: str | None = None, **_: Any):
            self.model_id = model_id
            self.endpoint = model_id
            self.api_key = api_key
            self.loaded = context.get_model(strip_model_id(model_id))
            self.class_names = list(self.loaded.package.classes)

        def infer_from_request(self, request: Any) -> Any:
            start = time.perf_counter()
            images = request.image if isinstance(request.image, list) else [request.image]
            frames = [load_image_bgr(image) for image in images]
            options = self._options(request)
            results = self.loaded.detect_batch(frames, **options)
            elapsed = time.perf_counter() - start
            out = [self._response(frame, detections, request, elapsed) for frame, detections in zip(frames, results)]
            return out if isinstance(request.image, list) else out[0]

        def _options(self, request: Any) -> dict[str, Any]:
            def number(name: str) -> Any:
                value = getattr(request, name, None)
                return value if isinstance(value, (int, float)) and not isinstance(value, bool) else DEFAULTS[name]

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
            xyxy = detections.xyxy
            predictions = [
                responses.ObjectDetectionPrediction(**{
                    "x": float((x1 + x2) / 2), "y": float((y1 + y2) / 2),
                    "width": float(x2 - x1), "height": float(y2 - y1),
                    "confidence": float(score), "class": str(name), "class_id": int(class_id),
                    "detection_id": str(uuid.uuid4()),
                })
                for (x1, y1, x2, y2), score, class_id, name in zip(
                    xyxy.tolist(), detections.confidence.tolist(), detections.class_id.tolist(),
                    detections.data["class_name"].tolist(),
                )
            ]
            return responses.ObjectDetectionInferenceResponse(
                predictions=predictions,
                image=responses.InferenceResponseImage(width=int(frame.shape[1]), height=int(frame.shape[0])),
                inference_id=getattr(request, "id", None) or str(uuid.uuid4()),
                time=elapsed,
            )

        def clear_cache(self, delete_from_disk: bool = True) -> None:
            """The session belongs to the Coral runtime context; ``shutdown()`` closes it."""

    return CoralPackageModel
