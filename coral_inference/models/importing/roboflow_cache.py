"""A Roboflow model as ``inference`` keeps it in its cache, read without importing ``inference``.

``inference``'s legacy cache holds, per ``<project>/<version>/``: ``weights.onnx``
(``yolov5s_weights.onnx`` for YOLOv5), ``class_names.txt``, ``environment.json``
(whose ``PREPROCESSING`` is a JSON *string*: resize ``format`` ``Stretch to`` — the
default — or ``Fit (black|grey|white edges) in``, optional static crop, contrast,
grayscale), ``model_type.json`` and for keypoint models ``keypoints_metadata.json``.
Fetching into that cache is ``coral_inference.cli.roboflow_fetch`` (it uses
``inference``'s own download code); this module only reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral_inference.models.importing.errors import ModelImportError

WEIGHT_NAMES = ("weights.onnx", "yolov5s_weights.onnx", "best.onnx", "model.onnx")
PAD_COLOURS = {"black": 0, "grey": 114, "gray": 114, "white": 255}


@dataclass
class RoboflowCacheEntry:
    root: Path
    weights: Path
    classes: list[str]
    preprocessing: dict[str, Any]
    model_type: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def resize(self) -> tuple[str, int]:
        """(Coral resize mode, pad grey) from the Roboflow resize format."""
        resize = self.preprocessing.get("resize") or {}
        if not resize.get("enabled", True):
            return "stretch", 114
        fmt = str(resize.get("format", "Stretch to"))
        if fmt.lower().startswith("fit"):
            colour = next((v for k, v in PAD_COLOURS.items() if k in fmt.lower()), 0)
            return "letterbox", colour
        return "stretch", 114

    @property
    def unsupported_steps(self) -> list[str]:
        """Enabled preprocessing steps Coral does not reproduce (the import refuses them)."""
        steps = []
        for key in ("static-crop", "contrast", "grayscale"):
            value = self.preprocessing.get(key)
            if isinstance(value, dict) and value.get("enabled"):
                steps.append(key)
        return steps

    @property
    def model_type_name(self) -> str:
        return str(self.model_type.get("model_type") or self.model_type.get("type") or "")

    @property
    def project_task(self) -> str:
        return str(
            self.model_type.get("project_task_type")
            or self.model_type.get("task_type")
            or "object-detection"
        )


def is_roboflow_cache_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and (path / "environment.json").is_file()
        and any((path / n).is_file() for n in WEIGHT_NAMES)
    )


def read_cache_dir(path: Path) -> RoboflowCacheEntry:
    """Weights, class names and preprocessing of one cached Roboflow model version."""
    weights = next((path / n for n in WEIGHT_NAMES if (path / n).is_file()), None)
    if weights is None:
        raise ModelImportError(
            f"{path}: no ONNX weights ({' or '.join(WEIGHT_NAMES)}); this is not an inference "
            "model cache "
            f"directory (expected $MODEL_CACHE_DIR/<project>/<version>/)"
        )
    try:
        environment = json.loads((path / "environment.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelImportError(
            f"{path / 'environment.json'}: unreadable ({exc}); fetch the model again"
        ) from None
    preprocessing_raw = environment.get("PREPROCESSING", "{}")
    try:
        preprocessing = (
            json.loads(preprocessing_raw)
            if isinstance(preprocessing_raw, str)
            else dict(preprocessing_raw)
        )
    except ValueError:
        raise ModelImportError(
            f"{path / 'environment.json'}: PREPROCESSING is not JSON: {preprocessing_raw!r}"
        ) from None
    classes: list[str] = []
    names_file = path / "class_names.txt"
    if names_file.is_file():
        classes = [
            line.strip()
            for line in names_file.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    elif isinstance(environment.get("CLASS_MAP"), dict):
        mapping = environment["CLASS_MAP"]
        classes = [str(mapping[k]) for k in sorted(mapping, key=lambda k: int(k))]
    model_type: dict[str, Any] = {}
    if (path / "model_type.json").is_file():
        try:
            model_type = json.loads((path / "model_type.json").read_text(encoding="utf-8"))
        except ValueError:
            model_type = {}
    return RoboflowCacheEntry(path, weights, classes, preprocessing, model_type, environment)
