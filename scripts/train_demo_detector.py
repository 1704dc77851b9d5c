#!/usr/bin/env python
"""Train Coral's demo detector on synthetic shape scenes; export it in both head layouts.

The model is a small YOLOv8-style anchor-free detector (plain conv backbone, one head
per stride 8/16/32, DFL box regression with reg_max 16, sigmoid class scores), trained
on CPU from ``coral_inference.demo.scenes.random_still`` frames letterboxed to a square
input. Assignment is static and centre-based (a ground-truth box owns the anchor points
inside it, near its centre, on the levels its size suits) instead of YOLOv8's
task-aligned assigner: it needs no predictions, so it converges in minutes.

Outputs, written to ``--out`` (default ``coral_inference/models/zoo/coral-demo``):

* ``model_yolov8.onnx`` — one output ``[1, 4+nc, N]``: cx, cy, w, h in input pixels
  and class scores after sigmoid (Ultralytics layout).
* ``model_yolov8_dfl.onnx`` — nine outputs, per stride 8/16/32: box DFL logits
  ``[1, 4*16, H, W]``, class scores after sigmoid ``[1, nc, H, W]``, score sum clipped
  to 1 ``[1, 1, H, W]`` (rknn_model_zoo layout).
* ``training.json`` — classes, input, head layouts, seeds, parameters, time, mAP.

Both take ``images``: NCHW float32 RGB in 0..1, letterboxed (centred) with pad 114.
Both come from the same weights; the export checks them against each other with
ONNX Runtime. Everything is seeded: the same arguments give the same weights on the
same torch build.

    python scripts/train_demo_detector.py                         # the shipped model
    python scripts/train_demo_detector.py --steps 350 --out /tmp/quick  # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import queue
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coral_inference.demo.evaluation import mean_average_precision
from coral_inference.demo.scenes import SHAPE_CLASSES, random_still

STRIDES = (8, 16, 32)
REG_MAX = 16
PAD_VALUE = 114
# Box sizes (longest side, input pixels) each level learns; the overlaps give
# in-between sizes two chances, NMS removes the duplicates.
LEVEL_SIZE_RANGES = ((0.0, 40.0), (24.0, 96.0), (64.0, float("inf")))
CENTRE_RADIUS = 2.5  # positives lie within this many strides of the box centre
OPSET = 13


# ----------------------------------------------------------------------------- data


def letterbox(image: np.ndarray, size: int, offset: tuple[float, float] = (0.5, 0.5)):
    """BGR frame -> (size, size, 3) BGR canvas padded with 114, scale and (pad_x, pad_y).

    ``offset`` places the resized frame inside the free space (0.5, 0.5 = centred, as at
    inference); training varies it so the model does not rely on where padding is.
    """
    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_x, pad_y = int((size - new_w) * offset[0]), int((size - new_h) * offset[1])
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, scale, (pad_x, pad_y)


def to_tensor(canvases: list[np.ndarray]) -> torch.Tensor:
    """BGR uint8 canvases -> NCHW float32 RGB in 0..1 (the exported model's input)."""
    batch = np.stack(canvases)[..., ::-1].transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(batch)).float().div_(255.0)


def training_sample(rng: np.random.Generator, size: int):
    """A random still at a random aspect and resolution, degraded like a decoded video."""
    aspect = rng.choice([4 / 3, 16 / 9, 1.0, 3 / 4])
    long_side = size * rng.uniform(1.0, 2.0)
    width, height = (
        (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    )
    width, height = int(width) // 2 * 2, int(height) // 2 * 2
    frame = random_still(rng, width, height)
    image = frame.image
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.2))
    if rng.random() < 0.3:
        _, encoded = cv2.imencode(
            ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))]
        )
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    offset = (0.5, 0.5) if rng.random() < 0.7 else tuple(rng.uniform(0, 1, 2))
    canvas, scale, (pad_x, pad_y) = letterbox(image, size, offset)
    boxes = frame.xyxy * scale + np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32)
    return canvas, boxes, frame.class_ids


class BatchProducer:
    """Renders training batches on one background thread (numpy/cv2 release the GIL)."""

    def __init__(self, seed: int, batch: int, size: int, depth: int = 3):
        self._rng = np.random.default_rng(seed)
        self._batch, self._size = batch, size
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-producer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            samples = [training_sample(self._rng, self._size) for _ in range(self._batch)]
            item = (to_tensor([s[0] for s in samples]), [(s[1], s[2]) for s in samples])
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def next(self):
        return self._queue.get()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ---------------------------------------------------------------------------- model


class ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(inplace=True),
        )


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(ConvBN(c, c), ConvBN(c, c))

    def forward(self, x):
        return x + self.body(x)


class Head(nn.Module):
    """One level: a shared 3x3 conv, then DFL box logits and class logits."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.stem = ConvBN(c, c)
        self.box = nn.Conv2d(c, 4 * REG_MAX, 1)
        self.cls = nn.Conv2d(c, num_classes, 1)
        nn.init.constant_(self.cls.bias, -math.log(99.0))  # start near p = 0.01: few false alarms

    def forward(self, x):
        x = self.stem(x)
        return self.box(x), self.cls(x)


class DemoDetector(nn.Module):
    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 24, 32, 48, 48)):
        super().__init__()
        w = widths
        self.stem = nn.Sequential(ConvBN(3, w[0], 3, 2), ConvBN(w[0], w[1], 3, 2))
        self.p3 = nn.Sequential(ConvBN(w[1], w[2], 3, 2), Residual(w[2]))
        self.p4 = nn.Sequential(ConvBN(w[2], w[3], 3, 2), Residual(w[3]))
        self.p5 = nn.Sequential(ConvBN(w[3], w[4], 3, 2), Residual(w[4]))
        self.heads = nn.ModuleList(Head(c, num_classes) for c in w[2:])

    def forward(self, x):
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        return [head(p) for head, p in zip(self.heads, (p3, p4, p5))]


def dfl_expectation(box_logits: torch.Tensor) -> torch.Tensor:
    """``[B, 4*R, H, W]`` logits -> ``[B, 4, H, W]`` distances (l, t, r, b) in strides."""
    b, _, h, w = box_logits.shape
    probs = box_logits.view(b, 4, REG_MAX, h, w).softmax(dim=2)
    bins = torch.arange(REG_MAX, dtype=probs.dtype, device=probs.device).view(1, 1, REG_MAX, 1, 1)
    return (probs * bins).sum(dim=2)


def level_anchors(h: int, w: int, stride: int) -> torch.Tensor:
    """Anchor points ``[2, H, W]`` (x, y) at cell centres, in input pixels."""
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    return torch.stack([xs + 0.5, ys + 0.5]) * stride


class SingleOutputExport(nn.Module):
    """Ultralytics layout: ``[1, 4+nc, N]`` with cx, cy, w, h (pixels) and sigmoid scores."""

    def __init__(self, model: DemoDetector, size: int):
        super().__init__()
        self.model = model
        for i, s in enumerate(STRIDES):
            self.register_buffer(
                f"anchors{i}", level_anchors(size // s, size // s, s), persistent=False
            )

    def forward(self, images):
        columns = []
        for i, (box_logits, cls_logits) in enumerate(self.model(images)):
            stride, anchors = STRIDES[i], getattr(self, f"anchors{i}")
            ltrb = dfl_expectation(box_logits) * stride
            top_left, bottom_right = anchors - ltrb[:, :2], anchors + ltrb[:, 2:]
            boxes = torch.cat([(top_left + bottom_right) / 2, bottom_right - top_left], dim=1)
            columns.append(torch.cat([boxes, cls_logits.sigmoid()], dim=1).flatten(2))
        return torch.cat(columns, dim=2)


class DflOutputsExport(nn.Module):
    """rknn_model_zoo layout: per stride, box DFL logits, sigmoid scores, clipped score sum."""

    def __init__(self, model: DemoDetector):
        super().__init__()
        self.model = model

    def forward(self, images):
        outputs = []
        for box_logits, cls_logits in self.model(images):
            scores = cls_logits.sigmoid()
            outputs += [box_logits, scores, scores.sum(dim=1, keepdim=True).clamp(0.0, 1.0)]
        return tuple(outputs)


# ------------------------------------------------------------------------ training


class AnchorTable:
    """Flattened anchor points of all levels for one input size."""

    def __init__(self, size: int):
        points, strides, levels = [], [], []
        for i, s in enumerate(STRIDES):
            a = level_anchors(size // s, size // s, s).flatten(1).T
            points.append(a)
            strides.append(torch.full((len(a),), float(s)))
            levels.append(torch.full((len(a),), i))
        self.points = torch.cat(points)  # (N, 2)
        self.strides = torch.cat(strides)  # (N,)
        self.levels = torch.cat(levels)  # (N,)
        lo, hi = zip(*LEVEL_SIZE_RANGES)
        self.size_lo = torch.tensor(lo)[self.levels]
        self.size_hi = torch.tensor(hi)[self.levels]


def assign(boxes: torch.Tensor, anchors: AnchorTable) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre-based static assignment: (positive mask ``(N,)``, owning box index ``(N,)``).

    A box owns the anchors that lie inside it, within ``CENTRE_RADIUS`` strides of its
    centre, on a level whose size range holds it, plus always the anchor nearest its
    centre on its natural level; an anchor claimed twice goes to the smaller box.
    """
    n = len(anchors.points)
    if len(boxes) == 0:
        return torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.long)
    pts = anchors.points[None]  # (1, N, 2)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values
    inside = ((pts > boxes[:, None, :2]) & (pts < boxes[:, None, 2:])).all(dim=2)
    near = ((pts - centre[:, None]).abs() < CENTRE_RADIUS * anchors.strides[None, :, None]).all(
        dim=2
    )
    level_ok = (side[:, None] >= anchors.size_lo[None]) & (side[:, None] <= anchors.size_hi[None])
    claim = inside & near & level_ok
    natural = (side > 32).long() + (side > 64).long()
    dist = ((pts - centre[:, None]) ** 2).sum(dim=2)
    dist = torch.where(
        anchors.levels[None] == natural[:, None], dist, torch.full_like(dist, float("inf"))
    )
    claim[torch.arange(len(boxes)), dist.argmin(dim=1)] = True
    area = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    cost = torch.where(claim, area[:, None], torch.full_like(dist, float("inf")))
    best_cost, owner = cost.min(dim=0)
    return torch.isfinite(best_cost), owner


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of aligned xyxy boxes ``(n, 4)``."""
    inter = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0).prod(dim=1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(dim=1), (b[:, 2:] - b[:, :2]).prod(dim=1)
    union = area_a + area_b - inter + 1e-7
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).prod(dim=1) + 1e-7
    return inter / union - (hull - union) / hull


def flatten_outputs(outputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level head outputs -> box logits ``(B, N, 4, R)`` and class logits ``(B, N, nc)``."""
    box = torch.cat([b.flatten(2) for b, _ in outputs], dim=2)  # (B, 4R, N)
    cls = torch.cat([c.flatten(2) for _, c in outputs], dim=2)  # (B, nc, N)
    bsz, _, n = box.shape
    return box.view(bsz, 4, REG_MAX, n).permute(0, 3, 1, 2), cls.permute(0, 2, 1)


def detection_loss(outputs, targets, anchors: AnchorTable, num_classes: int):
    box_logits, cls_logits = flatten_outputs(outputs)
    bsz, n = cls_logits.shape[:2]
    positive = torch.zeros(bsz, n, dtype=torch.bool)
    cls_target = torch.zeros_like(cls_logits)
    box_target = torch.zeros(bsz, n, 4)
    for i, (boxes, class_ids) in enumerate(targets):
        boxes_t = torch.from_numpy(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        pos, owner = assign(boxes_t, anchors)
        positive[i] = pos
        if pos.any():
            cls_target[i, pos, torch.from_numpy(np.asarray(class_ids))[owner[pos]]] = 1.0
            box_target[i, pos] = boxes_t[owner[pos]]
    n_pos = max(int(positive.sum()), 1)
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits, cls_target, reduction="sum") / n_pos
    if not positive.any():
        return loss_cls, {"cls": loss_cls.item(), "iou": 0.0, "dfl": 0.0}
    logits = box_logits[positive]  # (P, 4, R)
    pts = anchors.points[None].expand(bsz, -1, -1)[positive]
    stride = anchors.strides[None].expand(bsz, -1)[positive][:, None]
    target = box_target[positive]
    target_ltrb = (torch.cat([pts - target[:, :2], target[:, 2:] - pts], dim=1) / stride).clamp(
        0, REG_MAX - 1.01
    )
    bins = torch.arange(REG_MAX, dtype=logits.dtype)
    pred_ltrb = (logits.softmax(dim=2) * bins).sum(dim=2)
    pred_boxes = torch.cat(
        [pts - pred_ltrb[:, :2] * stride, pts + pred_ltrb[:, 2:] * stride], dim=1
    )
    loss_iou = (1.0 - giou(pred_boxes, target)).mean()
    left = target_ltrb.floor().long()
    weight_right = target_ltrb - left
    log_probs = logits.log_softmax(dim=2)
    loss_dfl = -(
        log_probs.gather(2, left[..., None]).squeeze(2) * (1 - weight_right)
        + log_probs.gather(2, (left + 1)[..., None]).squeeze(2) * weight_right
    ).mean()
    total = loss_cls + 2.0 * loss_iou + 0.5 * loss_dfl
    return total, {"cls": loss_cls.item(), "iou": loss_iou.item(), "dfl": loss_dfl.item()}


# ---------------------------------------------------------------------- evaluation


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS; indices kept, best first."""
    order = np.argsort(-scores)
    keep = []
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        tl = np.maximum(boxes[i, :2], boxes[rest, :2])
        br = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.clip(br - tl, 0, None).prod(axis=1)
        order = rest[inter / (areas[i] + areas[rest] - inter + 1e-9) <= iou]
    return np.array(keep, dtype=np.int64)


def decode_single_output(
    output: np.ndarray, conf: float = 0.01, iou: float = 0.5, max_det: int = 100
):
    """``[4+nc, N]`` -> xyxy, scores, class ids in input pixels after class-aware NMS."""
    boxes_cxcywh, scores = output[:4].T, output[4:].T
    class_ids, best = scores.argmax(axis=1), scores.max(axis=1)
    keep = best >= conf
    cxcy, wh = boxes_cxcywh[keep, :2], boxes_cxcywh[keep, 2:]
    xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    # offsetting boxes per class makes one NMS pass class-aware
    shifted = xyxy + class_ids[keep, None] * 4096.0
    kept = nms(shifted, best[keep], iou)[:max_det]
    return xyxy[kept], best[keep][kept], class_ids[keep][kept]


def evaluation_set(seed: int, count: int, size: int):
    """``count`` fresh stills (frame resolutions as at inference) with their ground truth."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(count):
        width, height = [(640, 480), (640, 360), (480, 480), (384, 288)][int(rng.integers(0, 4))]
        frame = random_still(rng, width, height)
        canvas, scale, pad = letterbox(frame.image, size)
        items.append((canvas, scale, pad, frame))
    return items


def evaluate(run_single_output, items, num_classes: int) -> dict:
    """mAP@0.5 of a callable mapping an NCHW batch of one to a ``[1, 4+nc, N]`` array."""
    predictions, truths = [], []
    for canvas, scale, (pad_x, pad_y), frame in items:
        xyxy, scores, class_ids = decode_single_output(run_single_output(to_tensor([canvas]))[0])
        xyxy = (xyxy - [pad_x, pad_y, pad_x, pad_y]) / scale
        h, w = frame.image.shape[:2]
        predictions.append((np.clip(xyxy, 0, [w, h, w, h]), scores, class_ids))
        truths.append((frame.xyxy, frame.class_ids))
    return mean_average_precision(predictions, truths, num_classes=num_classes, iou_threshold=0.5)


# -------------------------------------------------------------------------- export


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(model: DemoDetector, size: int, out: Path) -> dict:
    """Write both ONNX layouts, check them with ONNX Runtime against torch; describe them."""
    import onnxruntime as ort

    # Wrappers in eval mode: torch.onnx.export restores each wrapper's own mode afterwards,
    # and a wrapper left in training mode would switch the shared BatchNorms back.
    single, dfl = SingleOutputExport(model, size).eval(), DflOutputsExport(model).eval()
    dummy = torch.zeros(1, 3, size, size)
    single_path, dfl_path = out / "model_yolov8.onnx", out / "model_yolov8_dfl.onnx"
    dfl_names = [f"{kind}_{s}" for s in STRIDES for kind in ("box", "cls", "score_sum")]
    with torch.no_grad():
        torch.onnx.export(
            single,
            dummy,
            str(single_path),
            opset_version=OPSET,
            input_names=["images"],
            output_names=["output0"],
            dynamo=False,
        )
        torch.onnx.export(
            dfl,
            dummy,
            str(dfl_path),
            opset_version=OPSET,
            input_names=["images"],
            output_names=dfl_names,
            dynamo=False,
        )
        probe = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        expected_single = single(probe).numpy()
        expected_dfl = [t.numpy() for t in dfl(probe)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    got_single = ort.InferenceSession(str(single_path), options).run(
        None, {"images": probe.numpy()}
    )[0]
    got_dfl = ort.InferenceSession(str(dfl_path), options).run(None, {"images": probe.numpy()})
    single_diff = float(np.abs(got_single - expected_single).max())
    dfl_diff = max(float(np.abs(g - e).max()) for g, e in zip(got_dfl, expected_dfl))
    if single_diff > 1e-2 or dfl_diff > 1e-3:
        raise RuntimeError(
            f"ONNX export disagrees with torch: single {single_diff}, dfl {dfl_diff}"
        )
    return {
        "yolov8": {
            "file": single_path.name,
            "sha256": sha256(single_path),
            "bytes": single_path.stat().st_size,
            "outputs": {"output0": list(got_single.shape)},
            "max_abs_diff_vs_torch": single_diff,
        },
        "yolov8_dfl": {
            "file": dfl_path.name,
            "sha256": sha256(dfl_path),
            "bytes": dfl_path.stat().st_size,
            "strides": list(STRIDES),
            "reg_max": REG_MAX,
            "outputs": {name: list(t.shape) for name, t in zip(dfl_names, got_dfl)},
            "max_abs_diff_vs_torch": dfl_diff,
        },
    }


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1200, help="optimiser steps (default 1200)")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--size", type=int, default=320, help="square input size, a multiple of 32")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=1, help="training data and weight init seed")
    parser.add_argument(
        "--eval-seed", type=int, default=900001, help="evaluation stills seed (never trained on)"
    )
    parser.add_argument("--eval-images", type=int, default=300)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the batch producer adds one)"
    )
    parser.add_argument("--name", default="coral-demo")
    parser.add_argument(
        "--out", type=Path, default=REPO / "coral_inference" / "models" / "zoo" / "coral-demo"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="also save the torch weights here"
    )
    args = parser.parse_args(argv)
    if args.size % 32:
        parser.error(f"--size must be a multiple of 32, got {args.size}")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    num_classes = len(SHAPE_CLASSES)
    model = DemoDetector(num_classes)
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"demo detector: {parameters} parameters, input {args.size}, classes {SHAPE_CLASSES}",
        flush=True,
    )
    anchors = AnchorTable(args.size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    warmup = min(100, args.steps // 10)

    def learning_rate(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    producer = BatchProducer(args.seed, args.batch, args.size)
    started = time.monotonic()
    running: dict[str, float] = {}
    model.train()
    try:
        for step in range(args.steps):
            images, targets = producer.next()
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(step)
            loss, parts = detection_loss(model(images), targets, anchors, num_classes)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimiser.step()
            for key, value in {"loss": loss.item(), **parts}.items():
                running[key] = 0.95 * running.get(key, value) + 0.05 * value
            if step % 25 == 0 or step == args.steps - 1:
                elapsed = time.monotonic() - started
                print(
                    f"step {step + 1}/{args.steps}  "
                    + "  ".join(f"{k} {v:.3f}" for k, v in running.items())
                    + f"  lr {learning_rate(step):.2e}  {elapsed:.0f}s",
                    flush=True,
                )
    finally:
        producer.close()
    train_seconds = time.monotonic() - started

    model.eval()
    items = evaluation_set(args.eval_seed, args.eval_images, args.size)
    single_output = SingleOutputExport(model, args.size).eval()
    with torch.no_grad():
        metrics = evaluate(lambda x: single_output(x).numpy(), items, num_classes)
    print(
        f"mAP@0.5 on {args.eval_images} fresh stills (seed {args.eval_seed}): {metrics['map']:.4f} "
        f"per class {[round(a, 4) for a in metrics['per_class'] if a is not None]}",
        flush=True,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    if args.checkpoint:
        torch.save(model.state_dict(), args.checkpoint)
    heads = export(model, args.size, args.out)
    record = {
        "name": args.name,
        "task": "object-detection",
        "classes": list(SHAPE_CLASSES),
        "input": {
            "width": args.size,
            "height": args.size,
            "layout": "NCHW",
            "color": "RGB",
            "dtype": "float32",
            "scale": 1 / 255,
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
            "resize": "letterbox",
            "pad_value": PAD_VALUE,
            "input_name": "images",
        },
        "heads": heads,
        "seeds": {"training": args.seed, "evaluation": args.eval_seed},
        "parameters": parameters,
        "training": {
            "steps": args.steps,
            "batch": args.batch,
            "images_seen": args.steps * args.batch,
            "learning_rate": args.lr,
            "torch_threads": args.threads,
            "wall_seconds": round(train_seconds, 1),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "command": "python scripts/train_demo_detector.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
        },
        "metrics": {
            "map50": round(metrics["map"], 4),
            "ap50_per_class": {
                c: (None if a is None else round(a, 4))
                for c, a in zip(SHAPE_CLASSES, metrics["per_class"])
            },
            "ground_truth_per_class": dict(zip(SHAPE_CLASSES, metrics["ground_truth"])),
            "evaluation_images": args.eval_images,
            "evaluation": "stills from coral_inference.demo.scenes.random_still at 640x480/640x360/480x480/384x288, "
            "letterboxed; decode conf 0.01, class-aware NMS IoU 0.5, max 100; VOC all-point AP",
        },
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"wrote {args.out}: {heads['yolov8']['file']} ({heads['yolov8']['bytes']} B), "
        f"{heads['yolov8_dfl']['file']} ({heads['yolov8_dfl']['bytes']} B), training.json",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
