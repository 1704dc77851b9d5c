"""Workflow outputs as plain JSON: detections, images, numpy values and the rest."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of a workflow output (images become their shape, not pixels).

    >>> to_jsonable({"count": np.int64(3), "ratio": np.float32(0.5)})
    {'count': 3, 'ratio': 0.5}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if is_detections(value):
        return detections_to_list(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 3 and value.dtype == np.uint8:
            return {"image": {"height": value.shape[0], "width": value.shape[1]}}
        return value.tolist()
    image = getattr(value, "numpy_image", None)
    if isinstance(image, np.ndarray):
        return {"image": {"height": image.shape[0], "width": image.shape[1]}}
    return str(value)


def detections_to_list(detections: Any) -> list[dict[str, Any]]:
    """One dict per detection: box, confidence, class and tracker id where present."""
    n = len(detections)
    names = detections.data.get("class_name", [None] * n)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "xyxy": [round(float(c), 2) for c in detections.xyxy[i]],
            "confidence": None
            if detections.confidence is None
            else round(float(detections.confidence[i]), 4),
            "class_id": None if detections.class_id is None else int(detections.class_id[i]),
            "class_name": None if names[i] is None else str(names[i]),
        }
        if detections.tracker_id is not None:
            row["tracker_id"] = int(detections.tracker_id[i])
        rows.append(row)
    return rows


def is_detections(value: Any) -> bool:
    """A ``supervision.Detections`` (checked by shape, so supervision need not be imported)."""
    return type(value).__name__ == "Detections" and hasattr(value, "xyxy")
