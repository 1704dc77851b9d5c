"""Task heads: manifest rules, load-time refusal of mismatched outputs, masks, OBB NMS, classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models import load_package
from coral_inference.models.detector import Detector
from coral_inference.models.errors import ManifestError, OutputMismatchError
from coral_inference.models.package import InputSpec, sha256_of
from coral_inference.models.preprocess import (
    ResizeGeometry,
    letterbox_geometry,
    preprocess_image,
    to_tensor,
)
from coral_inference.models.tasks import ClassificationResult
from coral_inference.models.tasks import masks as masks_module
from coral_inference.models.tasks.masks import masks_in_boxes
from coral_inference.models.tasks.obb import corners, probiou, rotated_nms
from tests.models.builders import constant_model


def write_manifest(root: Path, **fields: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "t",
        "classes": ["a", "b"],
        "input": {"width": 64, "height": 64},
        "artifacts": {"onnxruntime": {"file": "model.onnx"}},
        **fields,
    }
    if (root / "model.onnx").is_file():
        manifest["artifacts"]["onnxruntime"]["sha256"] = sha256_of(root / "model.onnx")
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


# ------------------------------------------------------------------------------------ manifest


def test_head_must_fit_task(tmp_path):
    with pytest.raises(
        ManifestError,
        match=r"'yolov8_seg' decodes instance-segmentation outputs but task is 'object-detection'",
    ):
        load_package(write_manifest(tmp_path / "p", head={"type": "yolov8_seg"}))
    with pytest.raises(ManifestError, match=r"heads for obb: yolov8_obb"):
        load_package(write_manifest(tmp_path / "q", task="obb", head={"type": "yolov8"}))


def test_keypoint_task_needs_names_and_skeleton_in_range(tmp_path):
    with pytest.raises(ManifestError, match="needs 'keypoints"):
        load_package(
            write_manifest(tmp_path / "p", task="keypoint-detection", head={"type": "yolov8_pose"})
        )
    with pytest.raises(
        ManifestError, match=r"skeleton edges \[\[0, 5\]\] index past the 2 keypoint names"
    ):
        load_package(
            write_manifest(
                tmp_path / "q",
                task="keypoint-detection",
                head={"type": "yolov8_pose"},
                keypoints={"names": ["nose", "tail"], "skeleton": [[0, 1], [0, 5]]},
            )
        )
    package = load_package(
        write_manifest(
            tmp_path / "r",
            task="keypoint-detection",
            head={"type": "yolov8_pose"},
            keypoints={"names": ["nose", "tail"], "skeleton": [[0, 1]]},
        )
    )
    assert package.manifest.keypoints is not None and package.manifest.keypoints.names == [
        "nose",
        "tail",
    ]


def test_multi_label_is_for_classification_only(tmp_path):
    with pytest.raises(ManifestError, match="multi_label applies to task classification only"):
        load_package(write_manifest(tmp_path / "p", head={"type": "yolov8"}, multi_label=True))
    package = load_package(
        write_manifest(
            tmp_path / "q", task="classification", head={"type": "yolov8_cls"}, multi_label=True
        )
    )
    assert package.manifest.multi_label


# ---------------------------------------------------------------------------- load-time refusal


@pytest.mark.parametrize(
    ("task", "head", "outputs", "expected"),
    [
        (
            "instance-segmentation",
            "yolov8_seg",
            [np.zeros((1, 6, 84))],
            "[1, 38, 84], [1, 32, 16, 16]",
        ),
        ("keypoint-detection", "yolov8_pose", [np.zeros((1, 6, 84))], "[1, 15, 84]"),
        ("obb", "yolov8_obb", [np.zeros((1, 6, 84))], "[1, 7, 84]"),
        ("classification", "yolov8_cls", [np.zeros((1, 3))], "[1, 2]"),
        (
            "instance-segmentation",
            "yolov8_seg_dfl",
            [np.zeros((1, 38, 84)), np.zeros((1, 32, 16, 16))],
            "[1, 64, 8, 8], [1, 2, 8, 8], [1, 1, 8, 8], [1, 32, 8, 8]",
        ),
    ],
)
def test_outputs_that_do_not_fit_the_task_head_are_refused_at_load(
    tmp_path, task, head, outputs, expected
):
    root = tmp_path / "pkg"
    constant_model(root / "model.onnx", outputs)
    extra: dict[str, Any] = (
        {"keypoints": {"names": ["k0", "k1", "k2"]}} if task == "keypoint-detection" else {}
    )
    package = load_package(write_manifest(root, task=task, head={"type": head}, **extra))
    with pytest.raises(OutputMismatchError) as info:
        Detector(package, OnnxRuntimeBackend().prepare_session(package))
    message = str(info.value)
    assert expected in message, message
    for output in outputs:
        assert str(list(output.shape)) in message, message


def test_classify_on_a_detector_and_detect_on_a_classifier_are_refused(tmp_path):
    root = tmp_path / "cls"
    constant_model(root / "model.onnx", [np.array([[0.25, 0.75]], np.float32)])
    package = load_package(write_manifest(root, task="classification", head={"type": "yolov8_cls"}))
    detector = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    try:
        result = detector.classify(np.zeros((48, 80, 3), np.uint8))
        assert (
            result.top(2) == [("b", 0.75), ("a", 0.25)]
            and result.top_class == "b"
            and not result.multi_label
        )
        with pytest.raises(OutputMismatchError, match="call classify"):
            detector.detect(np.zeros((48, 80, 3), np.uint8))
    finally:
        detector.close()


# ------------------------------------------------------------------------------------ masks


def _dense_reference(
    logits: np.ndarray, boxes: np.ndarray, geometry: ResizeGeometry, input_wh
) -> np.ndarray:
    """Ultralytics' retina path in OpenCV: upsample x2 (the smallest factor putting this letterbox's
    content edges on whole cells), cut the content, resize to the frame, threshold, crop."""
    n, gh, gw = logits.shape
    up = np.stack([cv2.resize(m, (gw * 2, gh * 2), interpolation=cv2.INTER_LINEAR) for m in logits])
    scale = 2 * gw / input_wh[0]
    top, left = round(geometry.pad_top * scale), round(geometry.pad_left * scale)
    bottom, right = (
        round((geometry.pad_top + geometry.new_h) * scale),
        round((geometry.pad_left + geometry.new_w) * scale),
    )
    full = (
        np.stack(
            [
                cv2.resize(
                    m[top:bottom, left:right],
                    (geometry.src_w, geometry.src_h),
                    interpolation=cv2.INTER_LINEAR,
                )
                for m in up
            ]
        )
        > 0
    )
    rows, cols = np.arange(geometry.src_h)[None, :, None], np.arange(geometry.src_w)[None, None, :]
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    return full & (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)


def test_masks_in_boxes_match_a_dense_upsample_and_crop():
    rng = np.random.default_rng(3)
    logits = cv2.GaussianBlur(
        rng.normal(0, 1, (16, 16, 5)).astype(np.float32), (5, 5), 1.5
    ).transpose(2, 0, 1)
    geometry = letterbox_geometry((90, 160), (64, 64))  # 160x90 -> 64x36, padded top and bottom
    boxes = np.array(
        [
            [0, 0, 160, 90],
            [10.4, 5.5, 80.2, 60.9],
            [100, 20, 159.5, 89],
            [50, 50, 50, 70],
            [-5, -5, 30, 30],
        ],
        np.float32,
    )
    ours = masks_in_boxes(logits, boxes, geometry, (64, 64))
    reference = _dense_reference(logits, np.clip(boxes, 0, None), geometry, (64, 64))
    assert ours.shape == (5, 90, 160) and ours.dtype == bool
    assert not ours[3].any()  # a zero-width box has no pixels
    agreement = (ours == reference).mean(axis=(1, 2))
    assert agreement.min() > 0.999, agreement  # float rounding may flip a pixel whose logit is ~0


def _boxes_of_every_size(rng: np.random.Generator, count: int, w: int, h: int) -> np.ndarray:
    """Boxes from sub-pixel to whole-frame sides (many size classes), some over the edges."""
    sides = np.exp(rng.uniform(np.log(0.5), np.log(1.2 * max(w, h)), (count, 2)))
    centres = rng.uniform([-10, -10], [w + 10, h + 10], (count, 2))
    return np.concatenate([centres - sides / 2, centres + sides / 2], axis=1).astype(np.float32)


def test_prototype_masks_match_the_dense_path_and_drop_empty_instances(monkeypatch):
    rng = np.random.default_rng(5)
    prototypes = cv2.GaussianBlur(
        rng.normal(0, 1, (16, 16, 6)).astype(np.float32), (5, 5), 1.5
    ).transpose(2, 0, 1)
    coefficients = rng.normal(0, 1, (60, 6)).astype(np.float32)
    geometry = letterbox_geometry((90, 160), (64, 64))
    boxes = _boxes_of_every_size(rng, 60, 160, 90)
    boxes[0] = [30, 30, 30, 60]  # zero width: no pixels, dropped
    masks, kept = masks_module.prototype_masks(prototypes, coefficients, boxes, geometry, (64, 64))
    logits = np.einsum("kn,nhw->khw", coefficients, prototypes)
    reference = _dense_reference(logits, np.clip(boxes, 0, None), geometry, (64, 64))
    assert kept.tolist() == np.flatnonzero(reference.any(axis=(1, 2))).tolist()
    assert 0 not in kept.tolist() and masks.shape == (kept.size, 90, 160) and masks.dtype == bool
    agreement = (masks == reference[kept]).mean(axis=(1, 2))
    assert agreement.min() > 0.999, agreement
    # Chunking (bounded memory) does not change a pixel.
    monkeypatch.setattr(masks_module, "_PIXELS_PER_CHUNK", 64)
    chunked, kept_chunked = masks_module.prototype_masks(
        prototypes, coefficients, boxes, geometry, (64, 64)
    )
    assert np.array_equal(chunked, masks) and np.array_equal(kept_chunked, kept)


def test_uncropped_masks_cover_the_frame():
    rng = np.random.default_rng(6)
    logits = rng.normal(0, 1, (3, 12, 20)).astype(np.float32)
    full = ResizeGeometry(100, 60, 100, 60, 0, 0)
    masks = masks_in_boxes(logits, np.zeros((3, 4), np.float32), full, (100, 60), crop=False)
    reference = np.stack([cv2.resize(m, (100, 60), interpolation=cv2.INTER_LINEAR) for m in logits])
    assert masks.shape == (3, 60, 100)
    assert (masks == (reference > 0)).mean() > 0.999


# ------------------------------------------------------------------------------------ OBB


def test_probiou_and_corners():
    box = np.array([[50, 40, 20, 10, 0.4]], np.float32)
    assert probiou(box, box)[0, 0] == pytest.approx(1.0, abs=1e-3)
    far = np.array([[150, 140, 20, 10, 0.4]], np.float32)
    assert probiou(box, far)[0, 0] < 1e-3
    square = corners(np.array([[10, 10, 4, 2, 0]], np.float32))[0]
    assert square.tolist() == [[12, 11], [12, 9], [8, 9], [8, 11]]
    turned = corners(np.array([[10, 10, 4, 2, np.pi / 2]], np.float32))[0]
    np.testing.assert_allclose(turned, [[9, 12], [11, 12], [11, 8], [9, 8]], atol=1e-5)


def test_rotated_nms_keeps_classes_apart_and_limits():
    boxes = np.array(
        [[10, 10, 8, 4, 0.3], [10.2, 10, 8, 4, 0.3], [10.2, 10, 8, 4, 0.3], [60, 60, 8, 4, 1.0]],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.85, 0.5])
    assert rotated_nms(boxes, scores, 0.5, class_ids=np.array([0, 0, 1, 0])).tolist() == [0, 2, 3]
    assert rotated_nms(boxes, scores, 0.5).tolist() == [0, 3]
    assert rotated_nms(boxes, scores, 0.5, max_detections=1).tolist() == [0]
    assert rotated_nms(np.zeros((0, 5)), np.zeros(0), 0.5).tolist() == []


# ---------------------------------------------------------------------------- classification


def test_classification_result_multi_label():
    result = ClassificationResult(
        ["a", "b", "c"], np.array([0.7, 0.2, 0.9], np.float32), multi_label=True
    )
    assert result.predicted_classes(0.5) == ["c", "a"]
    assert result.top_ids(2).tolist() == [2, 0] and result.top_confidence == pytest.approx(0.9)
    with pytest.raises(ValueError, match="confidences has shape"):
        ClassificationResult(["a"], np.zeros(2, np.float32))


# ------------------------------------------------------------------------------------ preprocessing


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"color": "BGR"},
        {"layout": "NHWC", "dtype": "uint8"},
        {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "resize": "stretch"},
        {"dtype": "float16"},
        {"resize": "center-crop"},
    ],
)
def test_to_tensor_equals_the_plain_formula(changes):
    spec = InputSpec(width=64, height=48, **changes)
    frame = np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8)
    tensor, _ = preprocess_image(frame, spec)
    image = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    got = to_tensor(image, spec)
    rgb = image[..., ::-1] if spec.color == "RGB" else image
    want = (rgb.astype(np.float64) * spec.scale - np.array(spec.mean)) / np.array(spec.std)
    if spec.dtype == "uint8":
        want = rgb
    if spec.layout == "NCHW":
        want = want.transpose(2, 0, 1)
    assert (
        got.shape == (1, *want.shape)
        and got.dtype == np.dtype(spec.dtype)
        and got.flags["C_CONTIGUOUS"]
    )
    np.testing.assert_allclose(got[0].astype(np.float64), want, rtol=1e-3, atol=1e-3)
    assert tensor.shape[0] == 1


# ------------------------------------------------------------------------------------ conversion


@pytest.mark.parametrize(
    ("head", "hint"),
    [
        ("yolov8_seg", "yolov8_seg_dfl"),
        ("yolov8_pose", "yolov8_pose_dfl"),
        ("yolov8_obb", "without --int8"),
    ],
)
def test_int8_conversion_of_single_output_task_heads_is_refused(tmp_path, head, hint):
    from coral_inference.models.convert import ConversionError, plan_rknn_build

    root = tmp_path / "pkg"
    constant_model(root / "model.onnx", [np.zeros((1, 6, 84), np.float32)])
    task = {"yolov8_seg": "instance-segmentation", "yolov8_pose": "keypoint-detection"}.get(
        head, "obb"
    )
    extra: dict[str, Any] = {"keypoints": {"names": ["k"]}} if task == "keypoint-detection" else {}
    package = load_package(write_manifest(root, task=task, head={"type": head}, **extra))
    with pytest.raises(ConversionError, match=hint):
        plan_rknn_build(package, quantize=True, dataset=tmp_path / "list.txt")
    assert plan_rknn_build(package, quantize=False).head.type == head
