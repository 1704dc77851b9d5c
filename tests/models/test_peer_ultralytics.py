"""Coral's task decoding against Ultralytics' own predictions (recorded, Ultralytics not needed).

``scripts/peers/ultralytics_fixtures.py`` (run in the Ultralytics peer environment)
exported tiny random-weight YOLOv8 seg/pose/obb/cls models from Ultralytics' YAMLs
and recorded Ultralytics' predictor on the committed frames; for seg and pose it
also wrote ``split.onnx``, the same network in the rknn_model_zoo split layout.
Here the same ONNX files run through Coral's package -> backend -> detector path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models import load_package
from coral_inference.models.detector import Detector
from coral_inference.models.package import sha256_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "peers" / "ultralytics"
TASKS = {"segment": "instance-segmentation", "pose": "keypoint-detection", "obb": "obb", "classify": "classification"}
HEADS = {
    ("segment", "model"): "yolov8_seg", ("segment", "split"): "yolov8_seg_dfl",
    ("pose", "model"): "yolov8_pose", ("pose", "split"): "yolov8_pose_dfl",
    ("obb", "model"): "yolov8_obb", ("classify", "model"): "yolov8_cls",
}


def meta(task: str) -> dict[str, Any]:
    return json.loads((FIXTURES / task / "meta.json").read_text())


def expected(task: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / task / "expected.npz") as data:
        return {key: data[key] for key in data.files}


def frames() -> list[np.ndarray]:
    return [cv2.imread(str(FIXTURES / "frames" / f"frame{i}.png")) for i in range(3)]


def write_task_package(root: Path, task: str, variant: str, **head: Any) -> Path:
    info = meta(task)
    root.mkdir(parents=True, exist_ok=True)
    model = root / "model.onnx"
    model.write_bytes((FIXTURES / task / f"{variant}.onnx").read_bytes())
    size = info["settings"]["imgsz"]
    manifest: dict[str, Any] = {
        "name": f"peer-{task}-{variant}",
        "task": TASKS[task],
        "classes": info["classes"],
        "input": {"width": size, "height": size, "resize": "center-crop" if task == "classify" else "letterbox"},
        "head": {"type": HEADS[(task, variant)], **head},
        "artifacts": {"onnxruntime": {"file": "model.onnx", "sha256": sha256_of(model)}},
    }
    if task == "pose":
        count = info["kpt_shape"][0]
        manifest["keypoints"] = {"names": [f"k{i}" for i in range(count)], "skeleton": [[0, 1], [1, 2]]}
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


@pytest.fixture
def make_detector(tmp_path):
    made: list[Detector] = []

    def make(task: str, variant: str = "model", **head: Any) -> Detector:
        package = load_package(write_task_package(tmp_path / f"{task}-{variant}", task, variant, **head))
        detector = Detector(package, OnnxRuntimeBackend().prepare_session(package))
        made.append(detector)
        return detector

    yield make
    for detector in made:
        detector.close()


def match(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """For each of their boxes, the index of our box nearest to it (boxes are compared after)."""
    distance = np.abs(ours[None, :, :] - theirs[:, None, :]).max(axis=2)
    return distance.argmin(axis=1)


def options(task: str) -> dict[str, Any]:
    settings = meta(task)["settings"]
    return {"confidence": settings["conf"], "iou": settings["iou"], "max_detections": settings["max_det"]}


@pytest.mark.parametrize("variant", ["model", "split"])
def test_segmentation_matches_ultralytics(make_detector, variant):
    detector = make_detector("segment", variant)
    want = expected("segment")
    for index, frame in enumerate(frames()):
        got = detector.detect(frame, **options("segment"))
        boxes = want[f"f{index}_boxes"]
        assert len(got) == len(boxes), f"frame {index}: {len(got)} instances, Ultralytics {len(boxes)}"
        order = match(got.xyxy, boxes)
        np.testing.assert_allclose(got.xyxy[order], boxes, atol=1.0)
        assert got.class_id[order].tolist() == want[f"f{index}_cls"].tolist()
        shape = tuple(want[f"f{index}_mask_shape"])
        masks = np.unpackbits(want[f"f{index}_masks"], axis=1, count=shape[1] * shape[2]).reshape(shape).astype(bool)
        assert got.mask is not None and got.mask.shape == shape and got.mask.dtype == bool
        ours = got.mask[order]
        inter = (ours & masks).sum(axis=(1, 2))
        union = (ours | masks).sum(axis=(1, 2))
        iou = inter / np.maximum(union, 1)
        assert iou.min() >= 0.95, f"frame {index}: mask IoU per instance {np.round(iou, 3).tolist()}"


@pytest.mark.parametrize("variant", ["model", "split"])
def test_keypoints_match_ultralytics(make_detector, variant):
    detector = make_detector("pose", variant)
    want = expected("pose")
    for index, frame in enumerate(frames()):
        got = detector.detect(frame, **options("pose"))
        boxes = want[f"f{index}_boxes"]
        assert len(got) == len(boxes)
        order = match(got.xyxy, boxes)
        np.testing.assert_allclose(got.xyxy[order], boxes, atol=1.0)
        assert got.class_id[order].tolist() == want[f"f{index}_cls"].tolist()
        keypoints = want[f"f{index}_keypoints"]
        xy = got.data["keypoints_xy"][order]
        assert xy.dtype == np.float32 and xy.shape == keypoints[..., :2].shape
        np.testing.assert_allclose(xy, keypoints[..., :2], atol=1.0)
        np.testing.assert_allclose(got.data["keypoints_confidence"][order], keypoints[..., 2], atol=1e-3)


def test_oriented_boxes_match_ultralytics(make_detector):
    detector = make_detector("obb")
    want = expected("obb")
    for index, frame in enumerate(frames()):
        got = detector.detect(frame, **options("obb"))
        xywhr = want[f"f{index}_xywhr"]
        assert len(got) == len(xywhr)
        order = match(got.data["xywhr"][:, :4], xywhr[:, :4])
        np.testing.assert_allclose(got.data["xywhr"][order], xywhr, atol=1.0)
        polygons = got.data["xyxyxyxy"][order]
        assert polygons.shape == (len(xywhr), 4, 2) and polygons.dtype == np.float32
        np.testing.assert_allclose(polygons, want[f"f{index}_xyxyxyxy"], atol=1.0)
        np.testing.assert_allclose(got.xyxy[order], want[f"f{index}_boxes"], atol=1.0)
        assert got.class_id[order].tolist() == want[f"f{index}_cls"].tolist()


def test_classification_top5_matches_ultralytics(make_detector):
    detector = make_detector("classify")
    want = expected("classify")
    for index, frame in enumerate(frames()):
        result = detector.classify(frame)
        assert result.top_ids(5).tolist() == want[f"f{index}_top5"].tolist()
        np.testing.assert_allclose(result.confidences, want[f"f{index}_probs"], atol=0.02)


def test_classification_logits_declared_as_probabilities_are_refused(make_detector):
    from coral_inference.models.tasks.heads import classification_scores
    from coral_inference.models.errors import OutputMismatchError
    from coral_inference.models.package import HeadSpec

    with pytest.raises(OutputMismatchError, match="set head.activation to softmax"):
        classification_scores([np.array([[2.0, -1.0, 0.5]])], HeadSpec(type="yolov8_cls"), 3, multi_label=False)
    softmaxed = classification_scores([np.array([[2.0, -1.0, 0.5]])], HeadSpec(type="yolov8_cls", activation="softmax"), 3, False)
    assert abs(softmaxed.sum() - 1) < 1e-6 and softmaxed.argmax() == 0
