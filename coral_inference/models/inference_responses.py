"""Coral results as Roboflow ``inference`` responses, field for field as inference builds them.

One place turns a Coral model's output into inference's response entities, so the two
ways a workflow reaches a Coral package give the same predictions:

* ``coral/<name>`` ids in Roboflow's core model blocks — the inference ``Model`` of
  ``coral_inference.models.inference_registry`` answers ``infer_from_request`` with these
  responses, and the core block post-processes them as it does Roboflow's own models;
* Coral's classification block — it emits ``classification_response(...)`` dumped the way
  the core blocks receive it (``model_dump(by_alias=True, exclude_none=True)``).

The rules copied (as behaviour, not code) from inference's own classification, keypoint
and instance-segmentation response builders:

* single-label: classes scoring below ``confidence`` are dropped, the rest sorted by
  confidence (rounded to 4 places) descending; ``top``/``confidence`` are the first one,
  or ``""``/``0.0`` when none is left;
* multi-label: every class with its confidence and id; ``predicted_classes`` those
  scoring above ``confidence``;
* keypoints: a keypoint scoring below ``keypoint_confidence`` is left out; its
  ``class_id`` is its index in the package's keypoint names;
* instance segmentation: the mask's largest outer contour as the polygon ``points``.

Roboflow ``inference`` is imported inside the functions, through Coral's adapter.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np

if TYPE_CHECKING:
    import supervision as sv

    from coral_inference.models.tasks.results import ClassificationResult


def classification_response(
    result: ClassificationResult,
    image_size: tuple[int, int],
    confidence: float,
    inference_id: str | None = None,
    elapsed: float | None = None,
) -> Any:
    """``ClassificationInferenceResponse`` or, for a multi-label model,
    ``MultiLabelClassificationInferenceResponse``; ``image_size`` is ``(height, width)``."""
    # heavy: the adapter imports Roboflow inference (~12 s)
    from coral_inference.inference_adapter import models as adapter

    image = adapter.InferenceResponseImage(width=int(image_size[1]), height=int(image_size[0]))
    scores = np.asarray(result.confidences, dtype=np.float64)
    names = list(result.class_names)
    common: dict[str, Any] = {"image": image, "inference_id": inference_id, "time": elapsed}
    if result.multi_label:
        return adapter.MultiLabelClassificationInferenceResponse(
            predictions={
                name: {"confidence": float(s), "class_id": i}
                for i, (name, s) in enumerate(zip(names, scores))
            },
            predicted_classes=[name for name, s in zip(names, scores) if s > confidence],
            **common,
        )
    kept = [
        {"class_id": i, "class": name, "confidence": round(float(s), 4)}
        for i, (name, s) in enumerate(zip(names, scores))
        if s >= confidence
    ]
    kept.sort(key=lambda p: p["confidence"], reverse=True)
    return adapter.ClassificationInferenceResponse(
        predictions=kept,
        top=kept[0]["class"] if kept else "",
        confidence=kept[0]["confidence"] if kept else 0.0,
        **common,
    )


def _box_fields(xyxy: np.ndarray) -> list[dict[str, float]]:
    x1, y1, x2, y2 = (xyxy[:, i].astype(np.float64) for i in range(4))
    return [
        {"x": float(a), "y": float(b), "width": float(c), "height": float(d)}
        for a, b, c, d in zip((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    ]


def _prediction_fields(detections: sv.Detections) -> list[dict[str, Any]]:
    names = cast(np.ndarray, detections.data["class_name"]).tolist()
    assert detections.confidence is not None and detections.class_id is not None
    return [
        {
            **box,
            "confidence": float(score),
            "class": str(name),
            "class_id": int(class_id),
            "detection_id": str(uuid.uuid4()),
        }
        for box, score, class_id, name in zip(
            _box_fields(detections.xyxy),
            detections.confidence.tolist(),
            detections.class_id.tolist(),
            names,
        )
    ]


def mask_polygon(mask: np.ndarray) -> np.ndarray:
    """The largest outer contour (most points) of a bool mask, ``(k, 2)`` float32 pixels."""
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return np.zeros((0, 2), dtype=np.float32)
    return np.asarray(max(contours, key=len), dtype=np.float32).reshape(-1, 2)


def detection_response(
    detections: sv.Detections, image_size: tuple[int, int], **common: Any
) -> Any:
    """``ObjectDetectionInferenceResponse`` of boxes at source coordinates."""
    # heavy: the adapter imports Roboflow inference (~12 s)
    from coral_inference.inference_adapter import models as adapter

    image = adapter.InferenceResponseImage(width=int(image_size[1]), height=int(image_size[0]))
    predictions = [
        adapter.ObjectDetectionPrediction(**fields) for fields in _prediction_fields(detections)
    ]
    return adapter.ObjectDetectionInferenceResponse(predictions=predictions, image=image, **common)


def segmentation_response(
    detections: sv.Detections, image_size: tuple[int, int], **common: Any
) -> Any:
    """``InstanceSegmentationInferenceResponse``: boxes plus each mask's polygon."""
    # heavy: the adapter imports Roboflow inference (~12 s)
    from coral_inference.inference_adapter import models as adapter

    if detections.mask is None:
        raise ValueError("segmentation_response: the detections carry no masks")
    image = adapter.InferenceResponseImage(width=int(image_size[1]), height=int(image_size[0]))
    predictions = []
    for fields, mask in zip(_prediction_fields(detections), detections.mask):
        points = [adapter.Point(x=float(x), y=float(y)) for x, y in mask_polygon(mask).tolist()]
        predictions.append(adapter.InstanceSegmentationPrediction(**fields, points=points))
    return adapter.InstanceSegmentationInferenceResponse(
        predictions=predictions, image=image, **common
    )


def keypoints_response(
    detections: sv.Detections,
    image_size: tuple[int, int],
    keypoint_names: list[str],
    keypoint_confidence: float = 0.0,
    **common: Any,
) -> Any:
    """``KeypointsDetectionInferenceResponse``: boxes plus the keypoints scoring at least
    ``keypoint_confidence``, each named and numbered by its index in ``keypoint_names``."""
    # heavy: the adapter imports Roboflow inference (~12 s)
    from coral_inference.inference_adapter import models as adapter

    image = adapter.InferenceResponseImage(width=int(image_size[1]), height=int(image_size[0]))
    xy = np.asarray(detections.data["keypoints_xy"], dtype=np.float32).reshape(
        len(detections), -1, 2
    )
    scores = np.asarray(detections.data["keypoints_confidence"], dtype=np.float32).reshape(
        len(detections), -1
    )
    predictions = []
    for fields, points, confidences in zip(
        _prediction_fields(detections), xy.tolist(), scores.tolist()
    ):
        keypoints = [
            adapter.Keypoint(x=x, y=y, confidence=c, class_id=k, **{"class": keypoint_names[k]})
            for k, ((x, y), c) in enumerate(zip(points, confidences))
            if c >= keypoint_confidence
        ]
        predictions.append(adapter.KeypointsPrediction(**fields, keypoints=keypoints))
    return adapter.KeypointsDetectionInferenceResponse(
        predictions=predictions, image=image, **common
    )
