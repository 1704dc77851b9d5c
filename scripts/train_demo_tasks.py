#!/usr/bin/env python
"""Train Coral's demo segmentation, keypoint and classification models on synthetic scenes.

Each model starts from the shipped demo detector (``coral_inference/models/zoo/coral-demo``,
its ONNX weights loaded back into the same torch architecture as
``scripts/train_demo_detector.py`` builds; BatchNorm folded into the convolutions, so the
normalisation layers stay frozen as plain affine maps) and adds the task's branches, then
fine-tunes everything on CPU for a few hundred steps:

* ``seg`` — YOLOv8-seg style: per anchor 8 mask coefficients, prototypes at stride 4 from
  the stride-4 stem and the upsampled stride-8 features. Labels: the visible pixels of
  each shape (``coral_inference.demo.tasks.shape_masks``).
* ``pose`` — YOLOv8-pose style: per anchor the 5 keypoints of
  ``coral_inference.demo.tasks.KEYPOINT_NAMES`` (x, y in input pixels and a visibility
  score; inside the graph x, y = the cell's predicted box centre + output * its size).
  Scenes from ``pose_still`` (turns small enough for an unambiguous vertex order).
* ``cls`` — the dominant shape of ``classification_still`` (softmax) and, from a second
  linear layer on the same pooled features, every shape class present (sigmoid).

Outputs (``--out``, default ``coral_inference/models/zoo/coral-demo-<task>``), all with
input ``images``: NCHW float32 RGB in 0..1, letterboxed (centred) with pad 114:

* seg: ``model_yolov8_seg.onnx`` — ``output0`` ``[1, 4+nc+8, N]`` (cx, cy, w, h in input
  pixels, sigmoid scores, raw coefficients) and ``output1`` ``[1, 8, H/4, W/4]`` prototypes
  (Ultralytics layout); ``model_yolov8_seg_dfl.onnx`` — per stride box DFL logits, sigmoid
  scores, score sum, coefficients, then the prototypes (rknn_model_zoo layout);
* pose: ``model_yolov8_pose.onnx`` — ``output0`` ``[1, 4+nc+5*3, N]``: box, scores, then
  x, y (input pixels), visibility (sigmoid) per keypoint (Ultralytics layout);
  ``model_yolov8_pose_dfl.onnx`` — per stride ``[1, 64+nc, H, W]`` box DFL and class
  logits, then ``keypoints`` ``[1, 5, 3, N]`` (rknn_model_zoo layout);
* cls: ``model_cls.onnx`` ``[1, nc]`` softmax and ``model_cls_multilabel.onnx`` ``[1, nc]``
  sigmoid (Ultralytics classification layout), for ``coral-demo-cls`` and
  ``coral-demo-cls-multilabel``;
* ``training.json`` — task, classes, input, heads with output shapes and sha256, seeds,
  steps, time, and the metric on fresh evaluation stills.

Seeded: the same arguments give the same weights on the same torch build.

    python scripts/train_demo_tasks.py seg
    python scripts/train_demo_tasks.py pose --steps 40 --out /tmp/pose-quick
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import platform
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coral_inference.demo.evaluation import (  # noqa: E402  (after the sys.path line)
    keypoint_pck,
    mask_mean_average_precision,
)
from coral_inference.demo.scenes import SHAPE_CLASSES  # noqa: E402
from coral_inference.demo.tasks import (  # noqa: E402
    KEYPOINT_NAMES,
    KEYPOINT_SKELETON,
    Transform,
    classification_still,
    pose_still,
    shape_keypoints,
    shape_masks,
    task_still,
)


def _load_detector_script():
    spec = importlib.util.spec_from_file_location(
        "train_demo_detector", Path(__file__).with_name("train_demo_detector.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


det = _load_detector_script()

DETECTOR = REPO / "coral_inference" / "models" / "zoo" / "coral-demo" / "model_yolov8.onnx"
NUM_MASKS = 8
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
OPSET = 13
DEFAULTS = {  # task: (steps, batch, input size, learning rate)
    "seg": (40, 12, 320, 2e-3),
    "pose": (80, 12, 320, 2e-3),
    "cls": (100, 24, 224, 2e-3),
}


# ------------------------------------------------------------------ pretrained base


def load_detector_weights(model: nn.Module, onnx_path: Path) -> str:
    """Load the shipped detector's ONNX weights into ``model`` (a ``DemoDetector``).

    The ONNX graph holds one Conv per torch Conv2d, in the same order, with BatchNorm
    folded in: each ConvBN gets the folded kernel, an identity normalisation
    (mean 0, variance 1 - eps) and the folded bias as its shift. Returns the file's sha256.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    initialisers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    modules = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != len(modules):
        raise RuntimeError(
            f"{onnx_path}: {len(convs)} convolutions, the torch model has {len(modules)}"
        )
    parents = {id(m[0]): m for m in model.modules() if isinstance(m, det.ConvBN)}
    with torch.no_grad():
        for node, conv in zip(convs, modules):
            weight = torch.from_numpy(initialisers[node.input[1]].copy())
            bias = torch.from_numpy(initialisers[node.input[2]].copy())
            if weight.shape != conv.weight.shape:
                raise RuntimeError(
                    f"{onnx_path}: kernel {tuple(weight.shape)} for {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(weight)
            if id(conv) in parents:
                bn = parents[id(conv)][1]
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
            else:
                assert conv.bias is not None
                conv.bias.copy_(bias)
    return hashlib.sha256(onnx_path.read_bytes()).hexdigest()


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep every BatchNorm in eval mode (running statistics fixed; affine still trained)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def new_branch(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(det.ConvBN(c_in, c_in), nn.Conv2d(c_in, c_out, 1))


class TaskDetector(nn.Module):
    """The demo detector plus per-level extra outputs and, for segmentation, prototypes."""

    def __init__(self, task: str, widths: tuple[int, ...] = (16, 24, 32, 48, 48)):
        super().__init__()
        self.task = task
        self.base = det.DemoDetector(len(SHAPE_CLASSES), widths)
        extra = NUM_MASKS if task == "seg" else 3 * NUM_KEYPOINTS
        self.extra = nn.ModuleList(new_branch(c, extra) for c in widths[2:])
        if task == "seg":
            self.proto = nn.Sequential(
                det.ConvBN(widths[1] + widths[2], 32),
                det.ConvBN(32, 32),
                nn.Conv2d(32, NUM_MASKS, 1),
            )

    def forward(self, x):
        b = self.base
        s4 = b.stem(x)
        p3 = b.p3(s4)
        p4 = b.p4(p3)
        p5 = b.p5(p4)
        levels = (p3, p4, p5)
        heads = [head(p) for head, p in zip(b.heads, levels)]
        extras = [branch(p) for branch, p in zip(self.extra, levels)]
        proto = None
        if self.task == "seg":
            proto = self.proto(
                torch.cat([s4, F.interpolate(p3, scale_factor=2.0, mode="nearest")], dim=1)
            )
        return heads, extras, proto


class ClassifierNet(nn.Module):
    """The demo detector's backbone, average pooling of strides 16 and 32, two linear heads."""

    def __init__(self, widths: tuple[int, ...] = (16, 24, 32, 48, 48)):
        super().__init__()
        self.base = det.DemoDetector(len(SHAPE_CLASSES), widths)
        self.single = nn.Linear(widths[3] + widths[4], len(SHAPE_CLASSES))
        self.multi = nn.Linear(widths[3] + widths[4], len(SHAPE_CLASSES))

    def forward(self, x):
        b = self.base
        p4 = b.p4(b.p3(b.stem(x)))
        p5 = b.p5(p4)
        pooled = torch.cat([p4.mean(dim=(2, 3)), p5.mean(dim=(2, 3))], dim=1)
        return self.single(pooled), self.multi(pooled)


# --------------------------------------------------------------------------- export


class SegExport(nn.Module):
    def __init__(self, model: TaskDetector, size: int):
        super().__init__()
        self.model = model
        for i, s in enumerate(det.STRIDES):
            self.register_buffer(
                f"anchors{i}", det.level_anchors(size // s, size // s, s), persistent=False
            )

    def forward(self, images):
        heads, extras, proto = self.model(images)
        columns = []
        for i, ((box_logits, cls_logits), coefs) in enumerate(zip(heads, extras)):
            boxes = _boxes(box_logits, getattr(self, f"anchors{i}"), det.STRIDES[i])
            columns.append(torch.cat([boxes, cls_logits.sigmoid(), coefs], dim=1).flatten(2))
        return torch.cat(columns, dim=2), proto


class PoseExport(nn.Module):
    def __init__(self, model: TaskDetector, size: int):
        super().__init__()
        self.model = model
        for i, s in enumerate(det.STRIDES):
            self.register_buffer(
                f"anchors{i}", det.level_anchors(size // s, size // s, s), persistent=False
            )

    def forward(self, images):
        heads, extras, _ = self.model(images)
        columns = []
        for i, ((box_logits, cls_logits), raw) in enumerate(zip(heads, extras)):
            stride, anchors = det.STRIDES[i], getattr(self, f"anchors{i}")
            boxes = _boxes(box_logits, anchors, stride)
            b, _, h, w = raw.shape
            keypoints = _keypoints(raw, boxes).view(b, 3 * NUM_KEYPOINTS, h, w)
            columns.append(torch.cat([boxes, cls_logits.sigmoid(), keypoints], dim=1).flatten(2))
        return torch.cat(columns, dim=2)


class SegDflExport(nn.Module):
    """rknn_model_zoo yolov8_seg layout: per stride box DFL logits, sigmoid scores, clipped
    score sum, mask coefficients; prototypes last."""

    def __init__(self, model: TaskDetector):
        super().__init__()
        self.model = model

    def forward(self, images):
        heads, extras, proto = self.model(images)
        outputs = []
        for (box_logits, cls_logits), coefs in zip(heads, extras):
            scores = cls_logits.sigmoid()
            outputs += [box_logits, scores, scores.sum(dim=1, keepdim=True).clamp(0.0, 1.0), coefs]
        return (*outputs, proto)


class PoseDflExport(nn.Module):
    """rknn_model_zoo yolov8_pose layout: per stride box DFL logits ++ class logits
    ``[1, 64+nc, H, W]``, then all keypoints ``[1, K, 3, N]`` (x, y input pixels, visibility)."""

    def __init__(self, model: TaskDetector, size: int):
        super().__init__()
        self.model = model
        for i, s in enumerate(det.STRIDES):
            self.register_buffer(
                f"anchors{i}", det.level_anchors(size // s, size // s, s), persistent=False
            )

    def forward(self, images):
        heads, extras, _ = self.model(images)
        outputs, keypoints = [], []
        for i, ((box_logits, cls_logits), raw) in enumerate(zip(heads, extras)):
            stride, anchors = det.STRIDES[i], getattr(self, f"anchors{i}")
            outputs.append(torch.cat([box_logits, cls_logits], dim=1))
            keypoints.append(_keypoints(raw, _boxes(box_logits, anchors, stride)).flatten(3))
        return (*outputs, torch.cat(keypoints, dim=3))


class ClsExport(nn.Module):
    def __init__(self, model: ClassifierNet, multi_label: bool):
        super().__init__()
        self.model, self.multi_label = model, multi_label

    def forward(self, images):
        single, multi = self.model(images)
        return multi.sigmoid() if self.multi_label else single.softmax(dim=1)


def _keypoints(raw, boxes):
    """Per cell ``[B, 3K, H, W]`` raw outputs and ``[B, 4, H, W]`` cx, cy, w, h boxes ->
    ``[B, K, 3, H, W]``: x, y = box centre + raw * box size (input pixels), sigmoid visibility.

    Keypoints relative to the cell's own predicted box: scale-free targets within about
    +-0.5, which a small model learns far faster than offsets in strides.
    """
    b, _, h, w = raw.shape
    raw = raw.view(b, NUM_KEYPOINTS, 3, h, w)
    xy = boxes[:, None, :2] + raw[:, :, :2] * boxes[:, None, 2:]
    return torch.cat([xy, raw[:, :, 2:].sigmoid()], dim=2)


def _boxes(box_logits, anchors, stride):
    ltrb = det.dfl_expectation(box_logits) * stride
    top_left, bottom_right = anchors - ltrb[:, :2], anchors + ltrb[:, 2:]
    return torch.cat([(top_left + bottom_right) / 2, bottom_right - top_left], dim=1)


# ----------------------------------------------------------------------------- data


def _frame_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    aspect = rng.choice([4 / 3, 16 / 9, 1.0, 3 / 4])
    long_side = size * rng.uniform(1.0, 2.0)
    width, height = (
        (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    )
    return int(width) // 2 * 2, int(height) // 2 * 2


def _degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.2))
    if rng.random() < 0.3:
        _, encoded = cv2.imencode(
            ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))]
        )
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


def detection_sample(
    task: str, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    width, height = _frame_size(rng, size)
    scene, index = (pose_still if task == "pose" else task_still)(rng, width, height)
    frame = scene.render(index)
    offset = (0.5, 0.5) if rng.random() < 0.7 else tuple(rng.uniform(0, 1, 2))
    canvas, scale, (pad_x, pad_y) = det.letterbox(_degrade(rng, frame.image), size, offset)
    target = {
        "boxes": frame.xyxy * scale + np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32),
        "class_ids": frame.class_ids,
    }
    if task == "seg":
        quarter = Transform(scale / 4, pad_x / 4, pad_y / 4)
        target["masks"] = shape_masks(scene, index, size // 4, size // 4, quarter, supersample=4)
    else:
        target["keypoints"] = shape_keypoints(scene, index, Transform(scale, pad_x, pad_y))
    return canvas, target


def classification_sample(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    width, height = _frame_size(rng, size)
    still = classification_still(rng, width, height)
    offset = (0.5, 0.5) if rng.random() < 0.7 else tuple(rng.uniform(0, 1, 2))
    canvas, _, _ = det.letterbox(_degrade(rng, still.image), size, offset)
    return canvas, {"class_id": np.array(still.class_id), "present": still.present}


class Producer:
    """Renders batches on one background thread (numpy/cv2 release the GIL)."""

    def __init__(
        self,
        sample: Callable[[np.random.Generator], tuple[np.ndarray, dict]],
        seed: int,
        batch: int,
    ):
        self._rng, self._sample, self._batch = np.random.default_rng(seed), sample, batch
        self._queue: queue.Queue = queue.Queue(maxsize=3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-producer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                samples = [self._sample(self._rng) for _ in range(self._batch)]
                item = (det.to_tensor([s[0] for s in samples]), [s[1] for s in samples])
            except BaseException as error:  # handed to the training loop, which re-raises it
                item = error
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def next(self):
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise RuntimeError("rendering a training batch failed") from item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ----------------------------------------------------------------------------- loss


def _flatten_extras(extras) -> torch.Tensor:
    """Per-level ``[B, C, H, W]`` -> ``(B, N, C)`` in the anchor order of ``flatten_outputs``."""
    return torch.cat([e.flatten(2) for e in extras], dim=2).permute(0, 2, 1)


def task_loss(
    task: str, outputs, targets: list[dict], anchors
) -> tuple[torch.Tensor, dict[str, float]]:
    heads, extras, proto = outputs
    det_targets = [(t["boxes"], t["class_ids"]) for t in targets]
    loss, parts = det.detection_loss(heads, det_targets, anchors, len(SHAPE_CLASSES))
    extra = _flatten_extras(extras)
    box_flat, _ = det.flatten_outputs(heads)  # (B, N, 4, R) DFL logits
    bins = torch.arange(det.REG_MAX, dtype=box_flat.dtype)
    extra_losses = []
    generator = torch.Generator().manual_seed(len(extra_losses))
    for i, target in enumerate(targets):
        boxes = torch.from_numpy(np.asarray(target["boxes"], dtype=np.float32)).reshape(-1, 4)
        positive, owner = det.assign(boxes, anchors)
        index = torch.nonzero(positive).squeeze(1)
        if len(index) == 0:
            continue
        if len(index) > 64:  # bound the per-image cost; seeded, so runs repeat
            index = index[torch.randperm(len(index), generator=generator)[:64]]
        owner = owner[index]
        if task == "seg":
            masks = torch.from_numpy(target["masks"]).float()[owner]  # (P, h, w)
            assert proto is not None
            logits = torch.einsum("pc,chw->phw", extra[i, index], proto[i])
            h, w = logits.shape[1:]
            quarter = boxes[owner] / 4
            xs = torch.arange(w, dtype=torch.float32)[None, None, :] + 0.5
            ys = torch.arange(h, dtype=torch.float32)[None, :, None] + 0.5
            crop = (
                (xs >= quarter[:, 0, None, None])
                & (xs <= quarter[:, 2, None, None])
                & (ys >= quarter[:, 1, None, None])
                & (ys <= quarter[:, 3, None, None])
            ).float()
            per_pixel = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
            extra_losses.append(
                ((per_pixel * crop).sum(dim=(1, 2)) / crop.sum(dim=(1, 2)).clamp(min=1.0)).mean()
            )
        else:
            kps = torch.from_numpy(target["keypoints"])[owner]  # (P, K, 3)
            raw = extra[i, index].view(-1, NUM_KEYPOINTS, 3)
            points, stride = anchors.points[index], anchors.strides[index][:, None]
            ltrb = (box_flat[i, index].softmax(dim=2) * bins).sum(dim=2).detach() * stride  # (P, 4)
            centre = points + (ltrb[:, 2:] - ltrb[:, :2]) / 2
            wh = (ltrb[:, :2] + ltrb[:, 2:]).clamp(min=1.0)
            predicted = centre[:, None] + raw[..., :2] * wh[:, None]
            size = (boxes[owner, 2:] - boxes[owner, :2]).max(dim=1).values.clamp(min=4.0)
            seen = kps[..., 2]
            error = (predicted - kps[..., :2]).abs().sum(dim=2) / size[:, None]
            location = (error * seen).sum() / seen.sum().clamp(min=1.0)
            visibility = F.binary_cross_entropy_with_logits(raw[..., 2], seen)
            extra_losses.append(8.0 * location + 0.5 * visibility)
    extra_loss = torch.stack(extra_losses).mean() if extra_losses else loss.new_zeros(())
    parts[task] = extra_loss.item()
    return loss + extra_loss, parts


def classification_loss(outputs, targets: list[dict]) -> tuple[torch.Tensor, dict[str, float]]:
    single, multi = outputs
    labels = torch.tensor([int(t["class_id"]) for t in targets])
    present = torch.from_numpy(np.stack([t["present"] for t in targets]).astype(np.float32))
    loss_single = F.cross_entropy(single, labels)
    loss_multi = F.binary_cross_entropy_with_logits(multi, present)
    return loss_single + loss_multi, {"single": loss_single.item(), "multi": loss_multi.item()}


# ----------------------------------------------------------------------- evaluation


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _decode(output: np.ndarray, conf: float = 0.01, iou: float = 0.5, max_det: int = 100):
    """``[4+nc+E, N]`` -> xyxy, scores, class ids, extra columns after class-aware NMS."""
    nc = len(SHAPE_CLASSES)
    boxes_cxcywh, scores, extra = output[:4].T, output[4 : 4 + nc].T, output[4 + nc :].T
    class_ids, best = scores.argmax(axis=1), scores.max(axis=1)
    keep = np.flatnonzero(best >= conf)
    cxcy, wh = boxes_cxcywh[keep, :2], boxes_cxcywh[keep, 2:]
    xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    kept = det.nms(xyxy + class_ids[keep, None] * 4096.0, best[keep], iou)[:max_det]
    return xyxy[kept], best[keep][kept], class_ids[keep][kept], extra[keep][kept]


def evaluate(
    task: str, run: Callable[[torch.Tensor], Any], seed: int, count: int, size: int
) -> dict:
    """The task's metric on ``count`` fresh stills (never trained on: their own seed).

    seg: mask mAP@0.5 at prototype resolution (input / 4, letterboxed); pose: PCK@0.05
    (box longer side) in source pixels; cls: top-1 and multi-label exact match.
    """
    rng = np.random.default_rng(seed)
    sizes = [(640, 480), (640, 360), (480, 480), (384, 288)]
    if task == "cls":
        top1 = exact = 0
        for _ in range(count):
            width, height = sizes[int(rng.integers(0, 4))]
            still = classification_still(rng, width, height)
            canvas, _, _ = det.letterbox(still.image, size)
            single, multi = run(det.to_tensor([canvas]))
            top1 += int(int(np.argmax(single[0])) == still.class_id)
            exact += int(np.array_equal(multi[0] >= 0.5, still.present))
        return {
            "top1": round(top1 / count, 4),
            "multilabel_exact_match": round(exact / count, 4),
            "images": count,
        }
    predictions, truths = [], []
    for _ in range(count):
        width, height = sizes[int(rng.integers(0, 4))]
        scene, index = (pose_still if task == "pose" else task_still)(rng, width, height)
        frame = scene.render(index)
        canvas, scale, (pad_x, pad_y) = det.letterbox(frame.image, size)
        result = run(det.to_tensor([canvas]))
        if task == "seg":
            output, proto = result
            xyxy, scores, class_ids, coefs = _decode(output[0])
            logits = np.einsum("pc,chw->phw", coefs, proto[0])
            h, w = logits.shape[1:]
            q = xyxy / 4
            xs, ys = np.arange(w)[None, None] + 0.5, np.arange(h)[None, :, None] + 0.5
            inside = (
                (xs >= q[:, 0, None, None])
                & (xs <= q[:, 2, None, None])
                & (ys >= q[:, 1, None, None])
                & (ys <= q[:, 3, None, None])
            )
            predictions.append((inside & (logits > 0), scores, class_ids))
            quarter = Transform(scale / 4, pad_x / 4, pad_y / 4)
            truths.append(
                (shape_masks(scene, index, w, h, quarter, supersample=4), frame.class_ids)
            )
        else:
            xyxy, scores, class_ids, kps = _decode(result[0])
            offset = np.array([pad_x, pad_y], dtype=np.float32)
            kps = (kps.reshape(-1, NUM_KEYPOINTS, 3)[..., :2] - offset) / scale
            xyxy = (xyxy - np.tile(offset, 2)) / scale
            predictions.append((xyxy, scores, class_ids, kps))
            truths.append((frame.xyxy, frame.class_ids, shape_keypoints(scene, index)))
    if task == "seg":
        result = mask_mean_average_precision(predictions, truths, len(SHAPE_CLASSES))
        return {
            "mask_map50": round(result["map"], 4),
            "ap50_per_class": {
                c: None if a is None else round(a, 4)
                for c, a in zip(SHAPE_CLASSES, result["per_class"])
            },
            "images": count,
        }
    result = keypoint_pck([(p[0], p[1], p[2], p[3]) for p in predictions], truths, alpha=0.05)
    return {
        "pck05": round(result["pck"], 4),
        **{k: v for k, v in result.items() if k != "pck"},
        "images": count,
    }


# --------------------------------------------------------------------------- export


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(task: str, model: nn.Module, size: int, out: Path) -> dict:
    """Write the task's ONNX files, check them with ONNX Runtime against torch; describe them."""
    import onnxruntime as ort

    if task == "seg":
        split = [
            f"{kind}_{s}" for s in det.STRIDES for kind in ("box", "cls", "score_sum", "coef")
        ] + ["proto"]
        wrappers = {
            "yolov8_seg": (SegExport(model, size), "model_yolov8_seg.onnx", ["output0", "output1"]),  # type: ignore[arg-type]
            "yolov8_seg_dfl": (SegDflExport(model), "model_yolov8_seg_dfl.onnx", split),  # type: ignore[arg-type]
        }
    elif task == "pose":
        split = [f"box_cls_{s}" for s in det.STRIDES] + ["keypoints"]
        wrappers = {
            "yolov8_pose": (PoseExport(model, size), "model_yolov8_pose.onnx", ["output0"]),  # type: ignore[arg-type]
            "yolov8_pose_dfl": (PoseDflExport(model, size), "model_yolov8_pose_dfl.onnx", split),  # type: ignore[arg-type]
        }
    else:
        wrappers = {
            "classification": (ClsExport(model, False), "model_cls.onnx", ["output0"]),  # type: ignore[arg-type]
            "classification_multilabel": (
                ClsExport(model, True),
                "model_cls_multilabel.onnx",
                ["output0"],
            ),  # type: ignore[arg-type]
        }
    heads: dict[str, Any] = {}
    probe = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for head, (wrapper, filename, names) in wrappers.items():
        wrapper.eval()
        path = out / filename
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                torch.zeros(1, 3, size, size),
                str(path),
                opset_version=OPSET,
                input_names=["images"],
                output_names=names,
                dynamo=False,
            )
            expected = wrapper(probe)
        expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
        got = ort.InferenceSession(str(path), options).run(None, {"images": probe.numpy()})
        diff = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
        if diff > 1e-2:
            raise RuntimeError(f"{filename}: ONNX export disagrees with torch by {diff}")
        heads[head] = {
            "file": filename,
            "sha256": _sha256(path),
            "bytes": path.stat().st_size,
            "outputs": {name: list(g.shape) for name, g in zip(names, got)},
            "max_abs_diff_vs_torch": diff,
        }
    return heads


# ------------------------------------------------------------------------- packages

MANIFEST_HEADER = """\
# Coral's bundled demo {what} for the synthetic shape scenes of coral_inference.demo.
# Written by scripts/train_demo_tasks.py {task} (seeded; training.json has the run, the
# metric on fresh frames and the sha256 of every file).
"""


def write_packages(task: str, out: Path, record: dict[str, Any]) -> list[Path]:
    """Write ``coral-model.yaml`` next to the exported files (for ``cls`` also the
    ``<out>-multilabel`` package, which takes the multi-label file); returns the package dirs."""
    import yaml

    heads = record["heads"]
    base = {
        "task": record["task"],
        "classes": record["classes"],
        "input": {k: v for k, v in record["input"].items() if k != "input_name"},
    }
    convert = {"rknn": {"target_platform": "rk3588"}}
    if task == "seg":
        packages = {
            out: {
                "name": record["name"],
                **base,
                "description": "Demo shape segmentation (circle, square, triangle).",
                "head": {"type": "yolov8_seg"},
                "artifacts": {
                    "onnxruntime": {
                        "file": heads["yolov8_seg"]["file"],
                        "sha256": heads["yolov8_seg"]["sha256"],
                    }
                },
                "convert": {
                    "rknn": {
                        **convert["rknn"],
                        "onnx": heads["yolov8_seg_dfl"]["file"],
                        "head": {
                            "type": "yolov8_seg_dfl",
                            "strides": list(det.STRIDES),
                            "reg_max": det.REG_MAX,
                        },
                    }
                },
            }
        }
        what = "segmentation model: masks of circles, squares and triangles"
    elif task == "pose":
        packages = {
            out: {
                "name": record["name"],
                **base,
                "description": "Demo shape keypoints (centre, vertices), Coral's synthetic scenes.",
                "keypoints": record["keypoints"],
                "head": {"type": "yolov8_pose"},
                "artifacts": {
                    "onnxruntime": {
                        "file": heads["yolov8_pose"]["file"],
                        "sha256": heads["yolov8_pose"]["sha256"],
                    }
                },
                "convert": {
                    "rknn": {
                        **convert["rknn"],
                        "onnx": heads["yolov8_pose_dfl"]["file"],
                        "head": {
                            "type": "yolov8_pose_dfl",
                            "strides": list(det.STRIDES),
                            "reg_max": det.REG_MAX,
                        },
                    }
                },
            }
        }
        what = "keypoint model: centre and vertices of circles, squares and triangles"
    else:
        multi_dir = out.parent / f"{out.name}-multilabel"
        multi_dir.mkdir(parents=True, exist_ok=True)
        multi = heads["classification_multilabel"]
        if (out / multi["file"]).exists():
            (out / multi["file"]).replace(multi_dir / multi["file"])
        packages = {
            out: {
                "name": record["name"],
                **base,
                "description": "Demo dominant-shape classifier (circle, square, triangle).",
                "head": {"type": "yolov8_cls"},
                "artifacts": {
                    "onnxruntime": {
                        "file": heads["classification"]["file"],
                        "sha256": heads["classification"]["sha256"],
                    }
                },
            },
            multi_dir: {
                "name": f"{record['name']}-multilabel",
                **base,
                "multi_label": True,
                "description": "Demo multi-label classifier: the shapes a frame shows.",
                "head": {"type": "yolov8_cls"},
                "artifacts": {"onnxruntime": {"file": multi["file"], "sha256": multi["sha256"]}},
            },
        }
        what = "classifiers: the dominant shape (single-label) and the shapes present (multi-label)"
    for directory, manifest in packages.items():
        record_path = "training.json" if directory == out else f"../{out.name}/training.json"
        manifest["metadata"] = {"training": "scripts/train_demo_tasks.py", "record": record_path}
        body = yaml.safe_dump(manifest, sort_keys=False, width=100, default_flow_style=None)
        text = MANIFEST_HEADER.format(what=what, task=task) + body
        (directory / "coral-model.yaml").write_text(text)
    return list(packages)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("task", choices=sorted(DEFAULTS))
    parser.add_argument(
        "--steps", type=int, default=None, help="optimiser steps (default per task)"
    )
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument(
        "--size", type=int, default=None, help="square input size, a multiple of 32"
    )
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1, help="training data and new-layer init seed")
    parser.add_argument(
        "--eval-seed", type=int, default=900002, help="evaluation stills seed (never trained on)"
    )
    parser.add_argument("--eval-images", type=int, default=150)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the batch producer adds one)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="also save the torch weights here"
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="continue from a --checkpoint of an earlier run of the same task (recorded)",
    )
    args = parser.parse_args(argv)
    steps, batch, size, lr = (
        given if given is not None else default
        for given, default in zip((args.steps, args.batch, args.size, args.lr), DEFAULTS[args.task])
    )
    if size % 32:
        parser.error(f"--size must be a multiple of 32, got {size}")
    out = args.out or REPO / "coral_inference" / "models" / "zoo" / f"coral-demo-{args.task}"

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    task = args.task
    model: nn.Module = ClassifierNet() if task == "cls" else TaskDetector(task)
    base_sha = load_detector_weights(model.base, DETECTOR)  # type: ignore[arg-type]
    if args.init_from is not None:
        model.load_state_dict(torch.load(args.init_from, weights_only=True))
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"demo {task}: {parameters} parameters, input {size}, from {DETECTOR.name} {base_sha[:12]}",
        flush=True,
    )
    anchors = det.AnchorTable(size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    warmup = min(30, steps // 10)

    def learning_rate(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    if task == "cls":
        producer = Producer(lambda rng: classification_sample(rng, size), args.seed, batch)
    else:
        producer = Producer(lambda rng: detection_sample(task, rng, size), args.seed, batch)
    started = time.monotonic()
    running: dict[str, float] = {}
    model.train()
    freeze_batchnorm(model)
    try:
        for step in range(steps):
            images, targets = producer.next()
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(step)
            if task == "cls":
                loss, parts = classification_loss(model(images), targets)
            else:
                loss, parts = task_loss(task, model(images), targets, anchors)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimiser.step()
            for key, value in {"loss": loss.item(), **parts}.items():
                running[key] = 0.9 * running.get(key, value) + 0.1 * value
            if step % 20 == 0 or step == steps - 1:
                print(
                    f"step {step + 1}/{steps}  "
                    + "  ".join(f"{k} {v:.3f}" for k, v in running.items())
                    + f"  lr {learning_rate(step):.2e}  {time.monotonic() - started:.0f}s",
                    flush=True,
                )
    finally:
        producer.close()
    train_seconds = time.monotonic() - started

    model.eval()
    if args.checkpoint:
        torch.save(model.state_dict(), args.checkpoint)
    with torch.no_grad():
        if task == "cls":

            def run(x):
                single, multi = model(x)
                return single.softmax(dim=1).numpy(), multi.sigmoid().numpy()
        elif task == "seg":
            wrapper = SegExport(model, size).eval()  # type: ignore[arg-type]

            def run(x):
                output, proto = wrapper(x)
                return output.numpy(), proto.numpy()
        else:
            wrapper = PoseExport(model, size).eval()  # type: ignore[arg-type]

            def run(x):
                return wrapper(x).numpy()

        metrics = evaluate(task, run, args.eval_seed, args.eval_images, size)
    print(
        f"{task} on {args.eval_images} fresh stills (seed {args.eval_seed}): {metrics}", flush=True
    )

    out.mkdir(parents=True, exist_ok=True)
    heads = export(task, model, size, out)
    record: dict[str, Any] = {
        "name": f"coral-demo-{task}",
        "task": {
            "seg": "instance-segmentation",
            "pose": "keypoint-detection",
            "cls": "classification",
        }[task],
        "classes": list(SHAPE_CLASSES),
        "input": {
            "width": size,
            "height": size,
            "layout": "NCHW",
            "color": "RGB",
            "dtype": "float32",
            "scale": 1 / 255,
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
            "resize": "letterbox",
            "pad_value": det.PAD_VALUE,
            "input_name": "images",
        },
        "heads": heads,
        "initialised_from": {
            "file": str(DETECTOR.relative_to(REPO)),
            "sha256": base_sha,
            **({"continued_from_checkpoint": str(args.init_from)} if args.init_from else {}),
        },
        "seeds": {"training": args.seed, "evaluation": args.eval_seed},
        "parameters": parameters,
        "training": {
            "steps": steps,
            "batch": batch,
            "images_seen": steps * batch,
            "learning_rate": lr,
            "torch_threads": args.threads,
            "wall_seconds": round(train_seconds, 1),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "command": "python scripts/train_demo_tasks.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
        },
        "metrics": metrics,
    }
    if task == "seg":
        record["masks"] = NUM_MASKS
    if task == "pose":
        record["keypoints"] = {
            "names": list(KEYPOINT_NAMES),
            "skeleton": [list(e) for e in KEYPOINT_SKELETON],
        }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    write_packages(task, out, record)
    print(
        f"wrote {out}: " + ", ".join(f"{h['file']} ({h['bytes']} B)" for h in heads.values()),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
