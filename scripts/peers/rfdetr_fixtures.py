"""Record RF-DETR's own decoding of its own ONNX export into tests/fixtures/peers/rfdetr/.

Run inside the RF-DETR peer environment (never Coral's); no network is needed::

    HF_HUB_OFFLINE=1 "$(bash scripts/peer-env rfdetr)/bin/python" scripts/peers/rfdetr_fixtures.py

For RF-DETR Nano (detection) and RF-DETR Seg Nano (segmentation) it builds the model
from the ``rfdetr`` package with ``pretrain_weights=None`` (random weights, no checkpoint
download; the DINOv2 backbone is random too) and exports ONNX with the package's own
exporter. The exports are 100+ MB, too big to commit, so the fixture keeps what decoding
needs: per frame, the raw ONNX outputs on RF-DETR's own preprocessed tensor
(``preprocess_to_nchw``: stretch, bilinear without antialias, ImageNet mean/std), and
RF-DETR's own post-processing of them (``PostProcess`` — top-k over sigmoid scores of
every (query, class) pair, boxes scaled to the frame and clamped, masks upsampled
bilinearly and thresholded at 0 — with the background slot excluded as RF-DETR's export
decoders do by default; for detection it also checks ``decode_detections`` agrees).
Coral's test feeds the raw outputs through a constant ONNX model and its whole package
path and compares. Per model ``expected.npz``:

* ``f{i}_dets``, ``f{i}_labels``: raw outputs; ``f{i}_mask_queries``, ``f{i}_masks_raw``:
  the mask logits of the queries RF-DETR selected (the others are never read);
* ``f{i}_boxes``, ``f{i}_conf``, ``f{i}_cls`` (and ``f{i}_masks`` packed bits): RF-DETR's
  result; ``f{i}_tensor_index`` / ``f{i}_tensor_value``: its input tensor at 4096 fixed
  positions (checks Coral's preprocessing).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import rfdetr  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FRAMES = ROOT / "tests" / "fixtures" / "peers" / "ultralytics" / "frames"
OUT = ROOT / "tests" / "fixtures" / "peers" / "rfdetr"
CLASSES = ["circle", "square", "triangle"]
SEED = 11
TARGET_DETECTIONS = 8


def frames() -> list[Image.Image]:
    return [Image.open(FRAMES / f"frame{i}.png").convert("RGB") for i in range(3)]


def build(kind: str):
    torch.manual_seed(SEED)
    cls = rfdetr.RFDETRSegNano if kind == "seg" else rfdetr.RFDETRNano
    return cls(pretrain_weights=None, num_classes=len(CLASSES))


def rfdetr_postprocess(outputs: dict[str, np.ndarray], size_hw: tuple[int, int], threshold: float):
    """RF-DETR's PostProcess on one image's raw outputs, background slot excluded."""
    from rfdetr.models.postprocess import PostProcess

    nc = len(CLASSES)
    tensors = {
        "pred_logits": torch.from_numpy(outputs["labels"][..., :nc]),
        "pred_boxes": torch.from_numpy(outputs["dets"]),
    }
    if "masks" in outputs:
        tensors["pred_masks"] = torch.from_numpy(outputs["masks"])
    queries = outputs["dets"].shape[1]
    result = PostProcess(num_select=queries)(tensors, torch.tensor([list(size_hw)]))[0]
    keep = result["scores"] > threshold
    picked = {
        k: v[keep].numpy() for k, v in result.items() if torch.is_tensor(v) and len(v) == len(keep)
    }
    if "masks" in picked:
        picked["masks"] = picked["masks"][:, 0]
    # The query each result came from (PostProcess does not return it): rank the pairs like it does.
    flat = torch.from_numpy(outputs["labels"][0, :, :nc]).sigmoid().reshape(-1)
    order = torch.argsort(flat, descending=True, stable=True)[: int(keep.sum())]
    picked["queries"] = (order // nc).numpy()
    return picked


def main() -> int:
    import onnxruntime
    from rfdetr.export._runtime.decode import decode_detections
    from rfdetr.export._runtime.preprocess import preprocess_to_nchw

    images = frames()
    rng = np.random.default_rng(SEED)
    for kind in sys.argv[1:] or ["det", "seg"]:
        model = build(kind)
        resolution = int(model.model_config.resolution)
        with tempfile.TemporaryDirectory() as tmp:
            exported = Path(model.export(output_dir=tmp, verbose=False))
            if exported.is_dir():
                exported = next(exported.glob("*.onnx"))
            session = onnxruntime.InferenceSession(
                str(exported), providers=["CPUExecutionProvider"]
            )
            names = [o.name for o in session.get_outputs()]
            shapes = [list(o.shape) for o in session.get_outputs()]
            raw = []
            for image in images:
                tensor = preprocess_to_nchw(image, resolution, resolution, 3)
                raw.append(
                    (
                        tensor,
                        dict(zip(names, session.run(None, {session.get_inputs()[0].name: tensor}))),
                    )
                )
        # A threshold halfway between two neighbouring scores of frame 0: ~TARGET_DETECTIONS pass.
        scores = np.sort(1 / (1 + np.exp(-raw[0][1]["labels"][0, :, : len(CLASSES)].reshape(-1))))[
            ::-1
        ]
        threshold = float((scores[TARGET_DETECTIONS - 1] + scores[TARGET_DETECTIONS]) / 2)
        arrays: dict[str, np.ndarray] = {}
        for index, (image, (tensor, outputs)) in enumerate(zip(images, raw)):
            width, height = image.size
            result = rfdetr_postprocess(outputs, (height, width), threshold)
            if kind == "det":
                decoded = decode_detections(
                    outputs["dets"][0], outputs["labels"][0], (width, height), threshold
                )
                assert np.allclose(decoded.xyxy, result["boxes"], atol=1e-3), (
                    "decode_detections disagrees"
                )
                assert decoded.class_id.tolist() == result["labels"].tolist()
            arrays[f"f{index}_dets"] = outputs["dets"].astype(np.float32)
            arrays[f"f{index}_labels"] = outputs["labels"].astype(np.float32)
            arrays[f"f{index}_boxes"] = result["boxes"].astype(np.float32)
            arrays[f"f{index}_conf"] = result["scores"].astype(np.float32)
            arrays[f"f{index}_cls"] = result["labels"].astype(np.int64)
            if kind == "seg":
                queries = np.unique(result["queries"])
                arrays[f"f{index}_mask_queries"] = queries.astype(np.int64)
                arrays[f"f{index}_masks_raw"] = outputs["masks"][0, queries].astype(np.float32)
                masks = result["masks"].astype(bool)
                arrays[f"f{index}_masks"] = np.packbits(masks.reshape(len(masks), -1), axis=1)
                arrays[f"f{index}_mask_shape"] = np.asarray(masks.shape, np.int64)
            positions = rng.choice(tensor.size, 4096, replace=False)
            arrays[f"f{index}_tensor_index"] = positions.astype(np.int64)
            arrays[f"f{index}_tensor_value"] = tensor.reshape(-1)[positions].astype(np.float32)
        directory = OUT / kind
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(directory / "expected.npz", **arrays)
        meta = {
            "rfdetr": version("rfdetr"),
            "torch": torch.__version__,
            "model": type(model).__name__,
            "classes": CLASSES,
            "resolution": resolution,
            "threshold": threshold,
            "outputs": [[n, s] for n, s in zip(names, shapes)],
            "frames": [f"frame{i}.png" for i in range(len(images))],
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(
            kind,
            meta["outputs"],
            {k: list(v.shape) for k, v in arrays.items() if k.startswith("f0_")},
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
