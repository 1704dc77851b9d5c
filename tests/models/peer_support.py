"""Shared by the Ultralytics peer tests: fixture paths, recorded predictions and task packages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from coral_inference.models.package import sha256_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "peers" / "ultralytics"
TASKS = {
    "segment": "instance-segmentation",
    "pose": "keypoint-detection",
    "obb": "obb",
    "classify": "classification",
}
HEADS = {
    ("segment", "model"): "yolov8_seg",
    ("segment", "split"): "yolov8_seg_dfl",
    ("pose", "model"): "yolov8_pose",
    ("pose", "split"): "yolov8_pose_dfl",
    ("obb", "model"): "yolov8_obb",
    ("classify", "model"): "yolov8_cls",
}


def meta(task: str) -> dict[str, Any]:
    return json.loads((FIXTURES / task / "meta.json").read_text())


def expected(task: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / task / "expected.npz") as data:
        return {key: data[key] for key in data.files}


def frames() -> list[np.ndarray]:
    return [cv2.imread(str(FIXTURES / "frames" / f"frame{i}.png")) for i in range(3)]


def write_task_package(
    root: Path, task: str, variant: str, rknn: Path | None = None, **head: Any
) -> Path:
    """A package of a fixture model; ``rknn`` adds an ``rknn`` artifact (its head: the split
    layout if the file was built from ``split.onnx``)."""
    info = meta(task)
    root.mkdir(parents=True, exist_ok=True)
    model = root / "model.onnx"
    model.write_bytes((FIXTURES / task / f"{variant}.onnx").read_bytes())
    size = info["settings"]["imgsz"]
    manifest: dict[str, Any] = {
        "name": f"peer-{task}-{variant}",
        "task": TASKS[task],
        "classes": info["classes"],
        "input": {
            "width": size,
            "height": size,
            "resize": "center-crop" if task == "classify" else "letterbox",
        },
        "head": {"type": HEADS[(task, variant)], **head},
        "artifacts": {"onnxruntime": {"file": "model.onnx", "sha256": sha256_of(model)}},
    }
    if rknn is not None:
        split_head = {"segment": "yolov8_seg_dfl", "pose": "yolov8_pose_dfl"}.get(task)
        entry: dict[str, Any] = {"file": rknn.name, "sha256": sha256_of(rknn)}
        if split_head is not None and rknn.stem.startswith("split"):
            entry["head"] = {"type": split_head}
        manifest["artifacts"]["rknn"] = entry
    if task == "pose":
        count = info["kpt_shape"][0]
        manifest["keypoints"] = {
            "names": [f"k{i}" for i in range(count)],
            "skeleton": [[0, 1], [1, 2]],
        }
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root
