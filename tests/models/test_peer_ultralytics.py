"""Coral's task decoding against Ultralytics' own predictions (recorded, Ultralytics not needed).

``scripts/peers/ultralytics_fixtures.py`` (run in the Ultralytics peer environment)
exported tiny random-weight YOLOv8 seg/pose/obb/cls models from Ultralytics' YAMLs
and recorded Ultralytics' predictor on the committed frames; for seg and pose it
also wrote ``split.onnx``, the same network in the rknn_model_zoo split layout.
Here the same ONNX files run through Coral's package -> backend -> detector path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models import load_package
from coral_inference.models.detector import Detector
from tests.models.peer_support import expected, frames, meta, write_task_package


@pytest.fixture
def make_detector(tmp_path):
    made: list[Detector] = []

    def make(task: str, variant: str = "model", **head: Any) -> Detector:
        package = load_package(
            write_task_package(tmp_path / f"{task}-{variant}", task, variant, **head)
        )
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
    return {
        "confidence": settings["conf"],
        "iou": settings["iou"],
        "max_detections": settings["max_det"],
    }


@pytest.mark.parametrize("variant", ["model", "split"])
def test_segmentation_matches_ultralytics(make_detector, variant):
    detector = make_detector("segment", variant)
    want = expected("segment")
    for index, frame in enumerate(frames()):
        got = detector.detect(frame, **options("segment"))
        boxes = want[f"f{index}_boxes"]
        assert len(got) == len(boxes), (
            f"frame {index}: {len(got)} instances, Ultralytics {len(boxes)}"
        )
        order = match(got.xyxy, boxes)
        np.testing.assert_allclose(got.xyxy[order], boxes, atol=1.0)
        assert got.class_id[order].tolist() == want[f"f{index}_cls"].tolist()
        shape = tuple(want[f"f{index}_mask_shape"])
        masks = (
            np.unpackbits(want[f"f{index}_masks"], axis=1, count=shape[1] * shape[2])
            .reshape(shape)
            .astype(bool)
        )
        assert got.mask is not None and got.mask.shape == shape and got.mask.dtype == bool
        ours = got.mask[order]
        inter = (ours & masks).sum(axis=(1, 2))
        union = (ours | masks).sum(axis=(1, 2))
        iou = inter / np.maximum(union, 1)
        assert iou.min() >= 0.95, (
            f"frame {index}: mask IoU per instance {np.round(iou, 3).tolist()}"
        )


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
        np.testing.assert_allclose(
            got.data["keypoints_confidence"][order], keypoints[..., 2], atol=1e-3
        )


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
    from coral_inference.models.errors import OutputMismatchError
    from coral_inference.models.package import HeadSpec
    from coral_inference.models.tasks.heads import classification_scores

    with pytest.raises(OutputMismatchError, match="set head.activation to softmax"):
        classification_scores(
            [np.array([[2.0, -1.0, 0.5]])], HeadSpec(type="yolov8_cls"), 3, multi_label=False
        )
    softmaxed = classification_scores(
        [np.array([[2.0, -1.0, 0.5]])], HeadSpec(type="yolov8_cls", activation="softmax"), 3, False
    )
    assert abs(softmaxed.sum() - 1) < 1e-6 and softmaxed.argmax() == 0
