"""The shipped demo detector: accurate on fresh scenes, same answers in both head layouts.

Runs the committed ONNX files through Coral's own path (``load_package`` +
the ONNX Runtime backend's session + ``Detector.detect``), one package per head
layout built next to the files in a temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from coral_inference.demo.evaluation import mean_average_precision
from coral_inference.demo.scenes import SHAPE_CLASSES, random_still, write_demo_video

ZOO = Path(__file__).resolve().parents[2] / "coral_inference" / "models" / "zoo" / "coral-demo"
# Never used by scripts/train_demo_detector.py (training seed 1, its evaluation seed 900001).
FRESH_SEED = 20261122
LAYOUTS = {"yolov8": "model_yolov8.onnx", "yolov8_dfl": "model_yolov8_dfl.onnx"}


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads((ZOO / "training.json").read_text())


@pytest.fixture(scope="module")
def detectors(record, tmp_path_factory):
    """One ``Detector`` per head layout, each from its own package directory."""
    from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
    from coral_inference.models import Detector, load_package

    backend = OnnxRuntimeBackend({"intra_op_num_threads": 1})
    built = {}
    for head, filename in LAYOUTS.items():
        root = tmp_path_factory.mktemp(head)
        shutil.copy(ZOO / filename, root / filename)
        spec = record["input"]
        manifest = {
            "name": f"coral-demo-{head}",
            "classes": record["classes"],
            "input": {
                k: spec[k]
                for k in (
                    "width",
                    "height",
                    "layout",
                    "color",
                    "dtype",
                    "scale",
                    "resize",
                    "pad_value",
                )
            },
            "head": {"type": head, "strides": [8, 16, 32], "reg_max": 16},
            "artifacts": {
                "onnxruntime": {"file": filename, "sha256": record["heads"][head]["sha256"]}
            },
        }
        (root / "coral-model.yaml").write_text(json.dumps(manifest))
        package = load_package(root)
        built[head] = Detector(package, backend.prepare_session(package))
    yield built
    for detector in built.values():
        detector.close()


def _detect(detector, image):
    found = detector.detect(image, confidence=0.01, iou=0.5, max_detections=100)
    return found.xyxy, found.confidence, found.class_id


def test_training_record_describes_the_committed_files(record):
    assert record["classes"] == list(SHAPE_CLASSES)
    assert record["input"]["layout"] == "NCHW" and record["input"]["color"] == "RGB"
    for head, filename in LAYOUTS.items():
        data = (ZOO / filename).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["heads"][head]["sha256"], (
            f"{filename} changed without training.json"
        )
        assert len(data) < 4_000_000
    size = record["input"]["width"]
    assert record["heads"]["yolov8"]["outputs"]["output0"] == [
        1,
        4 + len(SHAPE_CLASSES),
        sum((size // s) ** 2 for s in (8, 16, 32)),
    ]
    shapes = list(record["heads"]["yolov8_dfl"]["outputs"].values())
    assert shapes[:3] == [
        [1, 64, size // 8, size // 8],
        [1, 3, size // 8, size // 8],
        [1, 1, size // 8, size // 8],
    ]
    assert len(shapes) == 9


@pytest.mark.slow
def test_map50_on_fresh_stills_is_at_least_0_9(detectors):
    rng = np.random.default_rng(FRESH_SEED)
    predictions, truths = [], []
    for index in range(150):
        width, height = [(640, 480), (640, 360), (480, 480), (800, 600)][index % 4]
        frame = random_still(rng, width, height)
        predictions.append(_detect(detectors["yolov8"], frame.image))
        truths.append((frame.xyxy, frame.class_ids))
    result = mean_average_precision(predictions, truths, num_classes=len(SHAPE_CLASSES))
    assert sum(result["ground_truth"]) > 300
    print(f"mAP@0.5 {result['map']:.4f}")
    assert result["map"] >= 0.9, result


@pytest.mark.slow
def test_map50_on_a_decoded_demo_video_is_at_least_0_9(detectors, tmp_path):
    import av

    truth = write_demo_video(
        tmp_path / "demo.mp4", seconds=8, fps=10, seed=FRESH_SEED, width=640, height=480
    )
    predictions = []
    with av.open(str(tmp_path / "demo.mp4")) as container:
        for frame in container.decode(video=0):
            predictions.append(_detect(detectors["yolov8"], frame.to_ndarray(format="bgr24")))
    truths = [(f.xyxy, f.class_ids) for f in truth.frames]
    result = mean_average_precision(predictions, truths, num_classes=len(SHAPE_CLASSES))
    print(f"mAP@0.5 {result['map']:.4f}")
    assert result["map"] >= 0.9, result


def test_both_head_layouts_give_the_same_detections(detectors):
    rng = np.random.default_rng(FRESH_SEED + 1)
    compared = 0
    for _ in range(12):
        image = random_still(rng, 640, 480).image
        (xyxy_a, score_a, class_a), (xyxy_b, score_b, class_b) = (
            _detect(d, image) for d in detectors.values()
        )
        confident_a, confident_b = score_a >= 0.25, score_b >= 0.25
        assert np.array_equal(class_a[confident_a], class_b[confident_b])
        np.testing.assert_allclose(xyxy_a[confident_a], xyxy_b[confident_b], atol=0.05)
        np.testing.assert_allclose(score_a[confident_a], score_b[confident_b], atol=1e-4)
        compared += int(confident_a.sum())
    assert compared > 20


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_tracked_line_counts_on_a_demo_video_match_its_ground_truth(detectors, tmp_path, seed):
    """What the acceptance workflow does (detect -> ByteTrack -> line counter), in supervision."""
    import av
    import supervision as sv

    truth = write_demo_video(tmp_path / "count.mp4", seconds=20, fps=15, seed=seed)
    assert min(truth.crossings.values()) > 0  # both directions occur
    tracker = sv.ByteTrack(frame_rate=15)
    (x1, y1), (x2, y2) = truth.line
    line = sv.LineZone(
        start=sv.Point(x1, y1), end=sv.Point(x2, y2), triggering_anchors=[sv.Position.CENTER]
    )
    with av.open(str(tmp_path / "count.mp4")) as container:
        for frame in container.decode(video=0):
            found = detectors["yolov8"].detect(frame.to_ndarray(format="bgr24"), confidence=0.4)
            line.trigger(tracker.update_with_detections(found))
    # supervision counts "in" when a centre crosses a top-to-bottom line from left to right
    assert (line.in_count, line.out_count) == (
        truth.crossings["left_to_right"],
        truth.crossings["right_to_left"],
    )
    for direction, per_class in (
        ("left_to_right", line.in_count_per_class),
        ("right_to_left", line.out_count_per_class),
    ):
        counted = {SHAPE_CLASSES[int(k)]: v for k, v in per_class.items() if v}
        assert counted == {k: v for k, v in truth.crossings_by_class[direction].items() if v}
