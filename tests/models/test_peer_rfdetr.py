"""Coral's RF-DETR decoding against RF-DETR's own post-processing (recorded; ``rfdetr`` not needed).

``scripts/peers/rfdetr_fixtures.py`` (RF-DETR peer environment, offline) built RF-DETR
Nano and RF-DETR Seg Nano with random weights, exported them with the package's own ONNX
exporter (100+ MB each, so not committed), ran the exports on RF-DETR's own preprocessed
tensors and recorded the raw outputs with RF-DETR's ``PostProcess`` of them. Here the raw
outputs come out of a constant ONNX model, so Coral's whole package path runs — backend,
its ImageNet/stretch preprocessing (checked against RF-DETR's tensor at sampled
positions), the rfdetr heads (top-k over sigmoid scores of every (query, class) pair, no
NMS, background slot excluded, masks upsampled and thresholded) — and must give RF-DETR's
detections and masks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models import load_package
from coral_inference.models.detector import Detector
from coral_inference.models.package import sha256_of
from tests.models.builders import constant_model
from tests.models.peer_support import frames

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "peers" / "rfdetr"
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def load_expected(kind: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / kind / "expected.npz") as data:
        return {key: data[key] for key in data.files}


def raw_outputs(want: dict[str, np.ndarray], index: int, info: dict[str, Any]) -> list[np.ndarray]:
    outputs = [want[f"f{index}_dets"], want[f"f{index}_labels"]]
    if f"f{index}_masks_raw" in want:
        shape = next(s for name, s in info["outputs"] if name == "masks")
        masks = np.full(shape, -10.0, np.float32)  # queries RF-DETR did not select are never read
        masks[0, want[f"f{index}_mask_queries"]] = want[f"f{index}_masks_raw"]
        outputs.append(masks)
    return outputs


def rfdetr_detector(
    root: Path, kind: str, outputs: list[np.ndarray], info: dict[str, Any]
) -> Detector:
    size = info["resolution"]
    constant_model(root / "model.onnx", outputs, input_shape=(1, 3, size, size))
    manifest = {
        "name": f"rfdetr-{kind}",
        "task": "instance-segmentation" if kind == "seg" else "object-detection",
        "classes": info["classes"],
        "input": {"width": size, "height": size, "resize": "stretch", "color": "RGB", **IMAGENET},
        "head": {"type": "rfdetr_seg" if kind == "seg" else "rfdetr"},
        "artifacts": {
            "onnxruntime": {"file": "model.onnx", "sha256": sha256_of(root / "model.onnx")}
        },
    }
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    package = load_package(root)
    return Detector(package, OnnxRuntimeBackend().prepare_session(package))


@pytest.mark.parametrize("kind", ["det", "seg"])
def test_rfdetr_matches_its_own_postprocess(tmp_path, kind):
    info = json.loads((FIXTURES / kind / "meta.json").read_text())
    want = load_expected(kind)
    for index, frame in enumerate(frames()):
        detector = rfdetr_detector(
            tmp_path / f"{kind}{index}", kind, raw_outputs(want, index, info), info
        )
        try:
            tensor, _ = detector.prepare(frame)
            theirs = want[f"f{index}_tensor_value"]
            ours = tensor.reshape(-1)[want[f"f{index}_tensor_index"]]
            # one grey level is 1/255/0.224 = 0.018 here; uint8 vs float resize rounds differently
            assert np.abs(ours - theirs).max() < 0.04
            got = detector.detect(frame, confidence=info["threshold"])
        finally:
            detector.close()
        boxes = want[f"f{index}_boxes"]
        assert len(got) == len(boxes), f"frame {index}: {len(got)} detections, RF-DETR {len(boxes)}"
        np.testing.assert_allclose(got.xyxy, boxes, atol=1.0)  # same order: both rank by score
        assert got.class_id.tolist() == want[f"f{index}_cls"].tolist()
        np.testing.assert_allclose(got.confidence, want[f"f{index}_conf"], atol=1e-5)
        if kind == "seg":
            shape = tuple(want[f"f{index}_mask_shape"])
            count = shape[1] * shape[2]
            masks = np.unpackbits(want[f"f{index}_masks"], axis=1, count=count).reshape(shape)
            assert got.mask is not None and got.mask.shape == shape
            inter = (got.mask & masks.astype(bool)).sum(axis=(1, 2))
            iou = inter / np.maximum((got.mask | masks.astype(bool)).sum(axis=(1, 2)), 1)
            assert iou.min() >= 0.95, f"frame {index}: mask IoU {np.round(iou, 3).tolist()}"
