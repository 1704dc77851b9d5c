"""Real Ultralytics detection exports and Ultralytics' own predictions on them, for Coral's import tests.

Run in the Ultralytics peer environment (never in Coral's)::

    ~/.cache/coral/peers/ultralytics/bin/python scripts/peers/ultralytics_detect_exports.py \
        tests/fixtures/peers/ultralytics-detect

It builds YOLOv8n, YOLO11n, YOLOv5nu, YOLOv10n and YOLO26n from Ultralytics' own
YAML files at a tiny width (no download; ``YOLO_OFFLINE=1``), gives them
He-initialised weights with BatchNorm statistics recalibrated on the frames (so
outputs depend on the image), exports each with ``model.export(format="onnx")``
(plus an ``nms=True`` variant and an NMS-free ``nms=False`` variant where the
architecture has the one-to-one head), then runs Ultralytics' predictor on the
exported ONNX files over a few fixed frames and records its boxes. Everything
is deterministic from the seeds below; the output folder holds the frames
(PNG), the ``.onnx`` files and ``predictions.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2
import numpy as np
import torch
import yaml
from ultralytics import YOLO
from ultralytics.utils import ROOT

CLASSES = {0: "circle", 1: "square", 2: "triangle"}
WIDTH, MAX_CHANNELS = 0.0625, 64

# name: (Ultralytics YAML under cfg/models, imgsz [h, w], export variants)
FAMILIES = {
    "yolov8n": ("v8/yolov8.yaml", [640, 640], [{}, {"nms": True, "conf": 0.1}]),
    "yolo11n": ("11/yolo11.yaml", [320, 320], [{}]),
    "yolov5nu": ("v5/yolov5.yaml", [320, 320], [{}]),
    "yolov10n": ("v10/yolov10n.yaml", [320, 320], [{"nms": False}]),
    "yolo26n": ("26/yolo26.yaml", [256, 320], [{}, {"nms": False}]),
}


def frames(seed: int = 7) -> list[np.ndarray]:
    """Three BGR scenes of filled shapes on gradients, non-square (letterbox paths are exercised)."""
    rng = np.random.default_rng(seed)
    out = []
    for width, height in ((480, 360), (640, 360), (300, 400)):
        ys, xs = np.mgrid[0:height, 0:width]
        image = np.stack(
            [xs * 200 // width, ys * 200 // height, np.full_like(xs, 90)], axis=-1
        ).astype(np.uint8)
        for _ in range(6):
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            x, y = int(rng.integers(20, width - 20)), int(rng.integers(20, height - 20))
            size = int(rng.integers(15, 70))
            kind = int(rng.integers(0, 3))
            if kind == 0:
                cv2.circle(image, (x, y), size // 2, colour, -1)
            elif kind == 1:
                cv2.rectangle(
                    image,
                    (x - size // 2, y - size // 2),
                    (x + size // 2, y + size // 2),
                    colour,
                    -1,
                )
            else:
                pts = np.array(
                    [
                        [x, y - size // 2],
                        [x - size // 2, y + size // 2],
                        [x + size // 2, y + size // 2],
                    ]
                )
                cv2.fillPoly(image, [pts.astype(np.int32)], colour)
        out.append(image)
    return out


def pick_confidence(scores: np.ndarray) -> float:
    """A threshold in the widest gap between the 15th and 60th best scores: no box sits near it."""
    ranked = scores[15:61]
    if len(ranked) < 2:
        return 0.25
    gaps = ranked[:-1] - ranked[1:]
    i = int(np.argmax(gaps))
    return float((ranked[i] + ranked[i + 1]) / 2)


def build(name: str, cfg: str, imgsz: list[int], work: Path, images: list[np.ndarray]) -> YOLO:
    spec = yaml.safe_load((ROOT / "cfg" / "models" / cfg).read_text())
    depth = spec["scales"]["n"][0] if "scales" in spec else spec.get("depth_multiple", 0.33)
    spec["scales"] = {"n": [depth, WIDTH, MAX_CHANNELS]}
    spec.pop("depth_multiple", None)
    spec.pop("width_multiple", None)
    spec["nc"] = len(CLASSES)
    spec["scale"] = "n"
    path = (
        work / f"{name}-tiny.yaml"
    )  # "yolov5nu.yaml" would be renamed to yolov5n.yaml by Ultralytics
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    torch.manual_seed(sum(map(ord, name)))
    model = YOLO(str(path))
    net = model.model
    net.names = dict(CLASSES)
    for module in net.modules():
        if (
            isinstance(module, torch.nn.Conv2d) and module.weight.requires_grad
        ):  # not DFL's fixed integral conv
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration passes
    batch = []
    for image in images:
        resized = cv2.resize(image, (imgsz[1], imgsz[0]))[:, :, ::-1].transpose(2, 0, 1) / 255.0
        batch.append(torch.from_numpy(resized.copy()).float())
    x = torch.stack(batch)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x)
    net.eval()
    # He-initialised class convs saturate every score at 1; shrink them so scores spread over (0, 1).
    head = net.model[-1]
    for branch in ("cv3", "one2one_cv3"):
        for sequence in getattr(head, branch, None) or []:
            last = sequence[-1]
            last.weight.data *= 0.05
            last.bias.data[:] = -2.0
    return model


def main(out: Path) -> None:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    work.mkdir(exist_ok=True)
    os.chdir(work)  # Ultralytics writes exports into the working directory
    images = frames()
    frame_files = []
    for i, image in enumerate(images):
        path = out / f"frame{i}.png"
        cv2.imwrite(str(path), image)
        frame_files.append(path.name)
    record: dict[str, object] = {"frames": frame_files, "classes": CLASSES, "models": {}}
    for name, (cfg, imgsz, variants) in FAMILIES.items():
        model = build(name, cfg, imgsz, work, images)
        for variant in variants:
            suffix = f"-nms{str(variant['nms']).lower()}" if "nms" in variant else ""
            exported = Path(model.export(format="onnx", imgsz=imgsz, simplify=True, **variant))
            target = out / f"{name}{suffix}.onnx"
            exported.replace(target)
            onnx_model = YOLO(str(target), task="detect")
            # A confidence that leaves a moderate number of boxes on these random-weight models.
            probe = onnx_model.predict(
                [im.copy() for im in images], conf=0.001, iou=0.7, imgsz=imgsz, verbose=False
            )
            scores = np.sort(np.concatenate([r.boxes.conf.numpy() for r in probe]))[::-1]
            conf = pick_confidence(scores)
            if variant.get("nms") is True:
                conf = max(conf, float(variant["conf"]))  # the export embeds its own threshold
            iou = 0.7
            results = onnx_model.predict(
                [im.copy() for im in images], conf=conf, iou=iou, imgsz=imgsz, verbose=False
            )
            record["models"][target.name] = {  # type: ignore[index]
                "family": name,
                "variant": variant,
                "imgsz": imgsz,
                "conf": conf,
                "iou": iou,
                "predictions": [
                    {
                        "xyxy": r.boxes.xyxy.numpy().round(3).tolist(),
                        "confidence": r.boxes.conf.numpy().round(5).tolist(),
                        "class_id": r.boxes.cls.numpy().astype(int).tolist(),
                    }
                    for r in results
                ],
            }
            counts = [len(r.boxes) for r in results]
            print(
                f"{target.name}: {target.stat().st_size} bytes, conf {conf}, boxes per frame {counts}",
                flush=True,
            )
    (out / "predictions.json").write_text(json.dumps(record, indent=1))
    for leftover in work.iterdir():
        leftover.unlink()
    work.rmdir()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/peers/ultralytics-detect"))
