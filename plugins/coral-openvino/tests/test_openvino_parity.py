"""Every task Coral decodes gives the same result on OpenVINO (CPU) as on ONNX Runtime.

The demo detector (``coral-demo``, bundled) on demo-video frames through
``RuntimeContext.get_model``, its OpenVINO IR form (an ``openvino`` artifact with the
weights as a companion), every bundled demo package (one per task), and the
segmentation / pose / oriented-box / classification models Coral's model tests use
(tiny Ultralytics exports in tests/fixtures/peers).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from coral_openvino import OpenVinoBackend

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models import load_package
from coral_inference.models.detector import Detector
from coral_inference.models.package import bundled_packages, sha256_of

PEERS = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "peers" / "ultralytics"
CONFIDENCE = 0.4


def test_demo_detector_gives_the_same_detections(runtime, demo_frames, same_detections, tmp_path):
    context = runtime(
        {"backends": {"options": {"openvino": {"cache_dir": str(tmp_path / "cache")}}}}
    )
    reference = context.get_model("coral/coral-demo", backend="onnxruntime")
    candidate = context.get_model("coral/coral-demo", backend="openvino")
    assert candidate.backend_name == "openvino" and candidate.describe()["session"][
        "execution_devices"
    ] == ["CPU"]
    matched = 0
    for index, frame in enumerate(demo_frames):
        matched += same_detections(
            reference.detect(frame, confidence=CONFIDENCE),
            candidate.detect(frame, confidence=CONFIDENCE),
            CONFIDENCE,
            f"frame {index}",
        )
    assert matched >= 2 * len(demo_frames)  # the video has several shapes in every frame
    batch = candidate.detect_batch(demo_frames, confidence=CONFIDENCE)
    for index, (one, other) in enumerate(
        zip(batch, (candidate.detect(f, confidence=CONFIDENCE) for f in demo_frames), strict=True)
    ):
        np.testing.assert_array_equal(one.xyxy, other.xyxy, err_msg=f"batch frame {index}")
    assert any((tmp_path / "cache").iterdir()), "the compiled model was not cached"


def test_an_openvino_ir_artifact_is_used_when_the_package_has_one(
    demo_frames, same_detections, tmp_path
):
    import openvino

    source = load_package("coral-demo")
    root = tmp_path / "pkg"
    shutil.copytree(source.root, root)
    onnx_key = source.artifacts_of_format("onnx")[0]
    openvino.save_model(
        openvino.Core().read_model(str(source.local_artifact_path(onnx_key))),
        str(root / "model.xml"),
    )
    manifest = yaml.safe_load((root / "coral-model.yaml").read_text())
    manifest["artifacts"]["openvino"] = {
        "file": "model.xml",
        "sha256": sha256_of(root / "model.xml"),
        "format": "openvino-ir",
        "companions": [{"file": "model.bin", "sha256": sha256_of(root / "model.bin")}],
    }
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    package = load_package(root)
    backend = OpenVinoBackend({"cache": False})
    assert backend.artifact_key(package) == "openvino"
    session = backend.prepare_session(package)
    assert session.path == (root / "model.xml").resolve()
    reference = Detector(source, OnnxRuntimeBackend().prepare_session(source))
    candidate = Detector(package, session)
    try:
        for index, frame in enumerate(demo_frames[:4]):
            same_detections(
                reference.detect(frame, confidence=CONFIDENCE),
                candidate.detect(frame, confidence=CONFIDENCE),
                CONFIDENCE,
                f"IR frame {index}",
            )
    finally:
        reference.close()
        candidate.close()
    (root / "model.bin").write_bytes(b"corrupt")
    with pytest.raises(Exception, match=r"companions.0.sha256"):
        backend.prepare_session(package)


TASKS = {
    "segment": ("instance-segmentation", "yolov8_seg"),
    "pose": ("keypoint-detection", "yolov8_pose"),
    "obb": ("obb", "yolov8_obb"),
    "classify": ("classification", "yolov8_cls"),
}


def peer_package(root: Path, task: str) -> Any:
    """A package around the peer fixture's ONNX export (its meta.json says classes and size)."""
    meta = json.loads((PEERS / task / "meta.json").read_text())
    root.mkdir(parents=True)
    shutil.copy(PEERS / task / "model.onnx", root / "model.onnx")
    size = meta["settings"]["imgsz"]
    kind, head = TASKS[task]
    manifest: dict[str, Any] = {
        "name": f"peer-{task}",
        "task": kind,
        "classes": meta["classes"],
        "input": {
            "width": size,
            "height": size,
            "resize": "center-crop" if task == "classify" else "letterbox",
        },
        "head": {"type": head},
        "artifacts": {
            "onnxruntime": {"file": "model.onnx", "sha256": sha256_of(root / "model.onnx")}
        },
    }
    if task == "pose":
        manifest["keypoints"] = {
            "names": [f"k{i}" for i in range(meta["kpt_shape"][0])],
            "skeleton": [[0, 1]],
        }
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return load_package(root), meta["settings"]


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_decodes_the_same_from_openvino(task, tmp_path, same_detections):
    package, settings = peer_package(tmp_path / task, task)
    frames = [cv2.imread(str(PEERS / "frames" / f"frame{i}.png")) for i in range(3)]
    reference = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    candidate = Detector(package, OpenVinoBackend({"cache": False}).prepare_session(package))
    try:
        if task == "classify":
            for frame in frames:
                want, got = reference.classify(frame), candidate.classify(frame)
                np.testing.assert_allclose(got.confidences, want.confidences, atol=1e-3)
                assert got.top_ids(3).tolist() == want.top_ids(3).tolist()
            return
        threshold = settings["conf"]
        matched = sum(
            same_detections(
                reference.detect(f, confidence=threshold, iou=settings["iou"]),
                candidate.detect(f, confidence=threshold, iou=settings["iou"]),
                threshold,
                f"{task} frame {i}",
            )
            for i, f in enumerate(frames)
        )
        assert matched > 0, f"{task}: no objects to compare"
    finally:
        reference.close()
        candidate.close()


def task_frames() -> list[np.ndarray]:
    """Demo traffic frames (shapes) and pose stills (figures): every demo task finds objects."""
    from coral_inference.demo import traffic_scene
    from coral_inference.demo.tasks import pose_still

    frames = [traffic_scene(7, 640, 480, frame_count=30).render(i).image for i in (3, 12)]
    for seed in (1, 2):
        scene, index = pose_still(seed, 320, 240)
        frames.append(scene.render(index).image)
    return frames


@pytest.mark.parametrize("name", sorted(bundled_packages()))
def test_every_bundled_demo_package_decodes_the_same(name, same_detections):
    """The bundled demo models of every task (coral-demo, -seg, -pose, -cls...)."""
    package = load_package(name)
    reference = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    candidate = Detector(package, OpenVinoBackend({"cache": False}).prepare_session(package))
    try:
        if package.manifest.task == "classification":
            for frame in task_frames():
                want, got = reference.classify(frame), candidate.classify(frame)
                np.testing.assert_allclose(got.confidences, want.confidences, atol=1e-3)
            return
        threshold = 0.25
        matched = sum(
            same_detections(
                reference.detect(f, confidence=threshold),
                candidate.detect(f, confidence=threshold),
                threshold,
                f"{name} frame {i}",
            )
            for i, f in enumerate(task_frames())
        )
        assert matched > 0, f"{name}: no objects to compare"
    finally:
        reference.close()
        candidate.close()
