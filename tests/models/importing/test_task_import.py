"""``models import`` with no flag on B1's real Ultralytics task exports (segment, pose, classify,
obb; tests/fixtures/peers/ultralytics, made by scripts/peers/ultralytics_fixtures.py): the same
outputs as a hand-written package and as Ultralytics' recorded predictions."""

from __future__ import annotations

import numpy as np
import pytest

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models.detector import Detector
from coral_inference.models.importing import import_model
from coral_inference.models.package import load_package
from tests.models.peer_support import (
    FIXTURES,
    HEADS,
    TASKS,
    expected,
    frames,
    meta,
    write_task_package,
)

CASES = [
    ("segment", "model"),
    ("segment", "split"),
    ("pose", "model"),
    ("pose", "split"),
    ("obb", "model"),
    ("classify", "model"),
]


def _options(task: str) -> dict:
    settings = meta(task)["settings"]
    return {
        "confidence": settings["conf"],
        "iou": settings["iou"],
        "max_detections": settings["max_det"],
    }


@pytest.mark.parametrize(("task", "variant"), CASES)
def test_task_export_imports_with_no_flag_like_a_hand_written_package(tmp_path, task, variant):
    imported = import_model(FIXTURES / task / f"{variant}.onnx", out=tmp_path / "imported").package
    assert imported.manifest.task == TASKS[task]
    assert imported.head.type == HEADS[(task, variant)]
    assert imported.classes == meta(task)["classes"]
    assert imported.input.width == meta(task)["settings"]["imgsz"]
    if task == "pose":
        assert imported.manifest.keypoints is not None
        assert len(imported.manifest.keypoints.names) == meta(task)["kpt_shape"][0]
    hand = load_package(write_task_package(tmp_path / "hand", task, variant))
    backend = OnnxRuntimeBackend()
    a = Detector(imported, backend.prepare_session(imported))
    b = Detector(hand, backend.prepare_session(hand))
    want = expected(task)
    try:
        for index, frame in enumerate(frames()):
            if task == "classify":
                ra, rb = a.classify(frame), b.classify(frame)
                np.testing.assert_array_equal(ra.confidences, rb.confidences)
                assert ra.top_ids(5).tolist() == want[f"f{index}_top5"].tolist()
                continue
            da, db = a.detect(frame, **_options(task)), b.detect(frame, **_options(task))
            np.testing.assert_array_equal(da.xyxy, db.xyxy)
            np.testing.assert_array_equal(da.class_id, db.class_id)
            boxes = want[f"f{index}_boxes"]
            assert len(da) == len(boxes), (
                f"{task} frame {index}: {len(da)} vs Ultralytics {len(boxes)}"
            )
            if len(boxes):
                nearest = np.abs(da.xyxy[None, :, :] - boxes[:, None, :]).max(axis=2).min(axis=1)
                assert nearest.max() <= 1.0
            if task == "segment":
                np.testing.assert_array_equal(da.mask, db.mask)
            if task == "pose":
                np.testing.assert_array_equal(da.data["keypoints_xy"], db.data["keypoints_xy"])
            if task == "obb":
                np.testing.assert_array_equal(da.data["xyxyxyxy"], db.data["xyxyxyxy"])
    finally:
        a.close()
        b.close()
