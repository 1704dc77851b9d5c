"""Heads of the tasks beyond boxes: instance segmentation, keypoints, oriented boxes,
classification and RF-DETR — decoding, vectorised post-processing and result types."""

from coral_inference.models.tasks.results import (
    KEYPOINTS_CONFIDENCE,
    KEYPOINTS_XY,
    ORIENTED_BOX_COORDINATES,
    ClassificationResult,
)

__all__ = [
    "KEYPOINTS_CONFIDENCE",
    "KEYPOINTS_XY",
    "ORIENTED_BOX_COORDINATES",
    "ClassificationResult",
]
