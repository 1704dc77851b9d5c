"""Small ONNX models and model packages built in tests with the ``onnx`` helper API.

* ``constant_model``: outputs fixed tensors whatever the input — decoders then see
  exactly the boxes a test placed, through the whole backend/detector path.
* ``conv_model``: a strided convolution whose outputs depend on every pixel — used
  to check that two input paths (NCHW float vs NHWC uint8) feed the same numbers.
* Encoders that place known boxes into each head's raw layout.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def constant_model(
    path: Path, outputs: list[np.ndarray], input_shape=(1, 3, 64, 64), input_dtype=TensorProto.FLOAT
) -> Path:
    """A model returning ``outputs`` unchanged (plus 0 * mean(input), so the input is used)."""
    nodes = [
        helper.make_node("Cast", ["images"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["as_float"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    for i, value in enumerate(outputs):
        initializers.append(numpy_helper.from_array(value.astype(np.float32), f"const{i}"))
        nodes.append(helper.make_node("Add", [f"const{i}", "nothing"], [f"output{i}"]))
        graph_outputs.append(
            helper.make_tensor_value_info(f"output{i}", TensorProto.FLOAT, list(value.shape))
        )
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("images", input_dtype, list(input_shape))],
        graph_outputs,
        initializers,
    )
    return _save(graph, path)


def conv_model(
    path: Path, channels_out: int = 7, size: int = 64, stride: int = 8, seed: int = 0
) -> Path:
    """NCHW float32 [1, 3, size, size] -> [1, channels_out, (size/stride)^2] via one strided conv."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.2, (channels_out, 3, stride, stride)).astype(np.float32)
    bias = rng.normal(0, 0.1, channels_out).astype(np.float32)
    cells = (size // stride) ** 2
    nodes = [
        helper.make_node(
            "Conv",
            ["images", "w", "b"],
            ["conv"],
            strides=[stride, stride],
            kernel_shape=[stride, stride],
        ),
        helper.make_node("Reshape", ["conv", "shape"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels_out, cells])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(np.array([1, channels_out, cells], np.int64), "shape"),
        ],
    )
    return _save(graph, path)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_package(
    root: Path,
    *,
    classes: list[str],
    input: dict[str, Any],
    head: dict[str, Any],
    artifacts: dict[str, dict[str, Any]],
    name: str = "test-model",
) -> Path:
    """Write ``coral-model.yaml`` (sha256 filled in for in-package files that exist)."""
    root.mkdir(parents=True, exist_ok=True)
    for spec in artifacts.values():
        if "file" in spec and "sha256" not in spec and (root / spec["file"]).is_file():
            spec["sha256"] = sha256(root / spec["file"])
    manifest = {
        "name": name,
        "task": "object-detection",
        "classes": classes,
        "input": input,
        "head": head,
        "artifacts": artifacts,
    }
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


# --------------------------------------------------------------------------- head encoders


def encode_yolov8(
    boxes_xyxy: np.ndarray, class_ids: np.ndarray, scores: np.ndarray, num_classes: int, cells: int
) -> np.ndarray:
    """``[1, 4+nc, cells]`` with the given boxes in the first columns, zero scores elsewhere."""
    out = np.zeros((1, 4 + num_classes, cells), np.float32)
    out[0, 0:4, :] = np.array([5, 5, 2, 2], np.float32)[:, None]  # tiny boxes with zero score
    for i, (box, cls, score) in enumerate(zip(boxes_xyxy, class_ids, scores)):
        x1, y1, x2, y2 = box
        out[0, :4, i] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        out[0, 4 + cls, i] = score
    return out


def encode_yolov8_dfl(
    boxes_xyxy: np.ndarray,
    class_ids: np.ndarray,
    scores: np.ndarray,
    num_classes: int,
    input_hw: tuple[int, int],
    strides=(8, 16, 32),
    reg_max: int = 16,
) -> list[np.ndarray]:
    """Nine rknn_model_zoo outputs; each box goes to the level and cell holding its centre.

    DFL logits put all weight on the two bins around each distance so the softmax
    expectation equals the distance exactly.
    """
    outputs = []
    levels = []
    for stride in strides:
        h, w = input_hw[0] // stride, input_hw[1] // stride
        box = np.full((1, 4 * reg_max, h, w), -50.0, np.float32)
        cls = np.zeros((1, num_classes, h, w), np.float32)
        levels.append((stride, h, w, box, cls))
    for (x1, y1, x2, y2), c, s in zip(boxes_xyxy, class_ids, scores):
        size = max(x2 - x1, y2 - y1)
        level = 0 if size < 64 else 1 if size < 160 else 2
        stride, h, w, box, cls = levels[level]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        gx, gy = int(cx // stride), int(cy // stride)
        anchor_x, anchor_y = gx + 0.5, gy + 0.5
        distances = [
            anchor_x - x1 / stride,
            anchor_y - y1 / stride,
            x2 / stride - anchor_x,
            y2 / stride - anchor_y,
        ]
        for side, d in enumerate(distances):
            assert 0 <= d < reg_max - 1, f"distance {d} does not fit reg_max {reg_max}"
            low = int(np.floor(d))
            frac = d - low
            logits = np.full(reg_max, -50.0, np.float32)
            if frac > 0:
                logits[low], logits[low + 1] = np.log(1 - frac), np.log(frac)
            else:
                logits[low] = 0.0
            box[0, side * reg_max : (side + 1) * reg_max, gy, gx] = logits
        cls[0, c, gy, gx] = s
    for _stride, _h, _w, box, cls in levels:
        score_sum = np.clip(cls.sum(axis=1, keepdims=True), 0, 1)
        outputs += [box, cls, score_sum]
    return outputs


def encode_yolov5(
    boxes_xyxy: np.ndarray,
    class_ids: np.ndarray,
    scores: np.ndarray,
    num_classes: int,
    input_hw: tuple[int, int],
    anchors,
    strides=(8, 16, 32),
) -> list[np.ndarray]:
    """Three ``[1, 3*(5+nc), H, W]`` heads (sigmoid already applied) holding the boxes."""
    per = 5 + num_classes
    heads = [np.zeros((1, 3, per, input_hw[0] // s, input_hw[1] // s), np.float32) for s in strides]
    for (x1, y1, x2, y2), c, s in zip(boxes_xyxy, class_ids, scores):
        size = max(x2 - x1, y2 - y1)
        level = 0 if size < 40 else 1 if size < 120 else 2
        stride = strides[level]
        cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        gx, gy = int(cx // stride), int(cy // stride)
        pairs = np.asarray(anchors[level], np.float32).reshape(-1, 2)
        a = int(np.argmin(np.abs(np.log(pairs[:, 0] / bw)) + np.abs(np.log(pairs[:, 1] / bh))))
        aw, ah = pairs[a]
        sx = (cx / stride - gx + 0.5) / 2
        sy = (cy / stride - gy + 0.5) / 2
        sw, sh = np.sqrt(bw / aw) / 2, np.sqrt(bh / ah) / 2
        assert all(0 < v < 1 for v in (sx, sy, sw, sh)), "box does not fit the anchor encoding"
        heads[level][0, a, :5, gy, gx] = [sx, sy, sw, sh, 1.0]
        heads[level][0, a, 5 + c, gy, gx] = s
    return [h.reshape(1, 3 * per, h.shape[3], h.shape[4]) for h in heads]
