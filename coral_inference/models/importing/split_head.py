"""``--split-head``: a stock Ultralytics detect export rewritten into the nine-output layout.

int8 RKNN builds need the rknn_model_zoo head: per stride, the box branch's DFL logits
``[1, 4*reg_max, H, W]``, the class scores after a sigmoid ``[1, nc, H, W]`` and their
clipped sum ``[1, 1, H, W]`` — so pixel boxes and probabilities never share one
quantisation scale. Stock Ultralytics cannot export it (the airockchip fork can). The
layers are all there in every v5u/v8/11/26 export: the last convolution of each
``cv2.<level>`` (box) and ``cv3.<level>`` (class) branch of the Detect module. This
module makes those tensors the graph's outputs, adds the sigmoid and the score sum,
and drops the decode tail. Decoding the result with ``head: yolov8_dfl`` (``reg_max``
1 for YOLO26's raw distances) gives the detections of the original model.

Needs the ``onnx`` package (``pip install onnx``); nothing else of Coral does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coral_inference.models.importing.errors import ModelImportError

_BRANCH = re.compile(r"/model\.(\d+)/(cv2|cv3)\.(\d+)/\2\.\3\.(\d+)/Conv$")


@dataclass(frozen=True)
class SplitResult:
    path: Path
    reg_max: int
    num_classes: int
    strides: list[int]
    output_names: list[str]


def _onnx() -> Any:
    try:
        # optional: onnx (a dev extra) is needed only by --split-head
        import onnx
    except ImportError:
        raise ModelImportError(
            "--split-head rewrites the ONNX graph with the 'onnx' package, which is not installed: "
            "pip install onnx"
        ) from None
    return onnx


def split_head(source: Path, target: Path, imgsz: tuple[int, int]) -> SplitResult:
    """Write ``target``: ``source`` with the nine per-stride outputs instead of the decoded one."""
    onnx = _onnx()

    # optional: onnx, present once _onnx() above returned
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    last: dict[tuple[str, int], tuple[int, Any]] = {}  # (branch, level) -> (sublayer, node)
    for node in graph.node:
        match = _BRANCH.search(node.name) if node.op_type == "Conv" else None
        if match:
            key = (match.group(2), int(match.group(3)))
            sub = int(match.group(4))
            if key not in last or sub > last[key][0]:
                last[key] = (sub, node)
    levels = sorted({level for _, level in last})
    if not levels or any(
        (branch, level) not in last for branch in ("cv2", "cv3") for level in levels
    ):
        raise ModelImportError(
            f"{source}: --split-head found no Ultralytics Detect branches (/model.N/cv2.i and "
            "cv3.i convolutions); "
            "it works on stock Ultralytics v5u/v8/11/26 detect exports (not end-to-end, seg, pose "
            "or OBB ones)"
        )
    inits = {i.name: i for i in graph.initializer}

    def out_channels(node: Any) -> int:
        weight = inits.get(node.input[1])
        if weight is None:
            raise ModelImportError(
                f"{source}: {node.name} has no constant weight; cannot read its channel count"
            )
        return int(weight.dims[0])

    box_channels = {out_channels(last[("cv2", level)][1]) for level in levels}
    class_channels = {out_channels(last[("cv3", level)][1]) for level in levels}
    if len(box_channels) != 1 or len(class_channels) != 1 or next(iter(box_channels)) % 4:
        raise ModelImportError(
            f"{source}: box/class branches disagree across levels ({box_channels}, "
            f"{class_channels})"
        )
    reg_max = next(iter(box_channels)) // 4
    nc = next(iter(class_channels))
    height, width = imgsz
    strides = [8 * 2**i for i in range(len(levels))]
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([1], np.int64), "coral_split_axes"),
            numpy_helper.from_array(np.array(0.0, np.float32), "coral_split_zero"),
            numpy_helper.from_array(np.array(1.0, np.float32), "coral_split_one"),
        ]
    )
    outputs = []
    for level, stride in zip(levels, strides, strict=True):
        h, w = -(-height // stride), -(-width // stride)
        box = last[("cv2", level)][1].output[0]
        logits = last[("cv3", level)][1].output[0]
        scores, summed, clipped = (
            f"scores_{stride}",
            f"score_sum_raw_{stride}",
            f"score_sum_{stride}",
        )
        graph.node.extend(
            [
                helper.make_node(
                    "Sigmoid", [logits], [scores], name=f"coral_split/sigmoid_{stride}"
                ),
                helper.make_node(
                    "ReduceSum",
                    [scores, "coral_split_axes"],
                    [summed],
                    keepdims=1,
                    name=f"coral_split/sum_{stride}",
                ),
                helper.make_node(
                    "Clip",
                    [summed, "coral_split_zero", "coral_split_one"],
                    [clipped],
                    name=f"coral_split/clip_{stride}",
                ),
            ]
        )
        outputs += [
            helper.make_tensor_value_info(box, TensorProto.FLOAT, [1, 4 * reg_max, h, w]),
            helper.make_tensor_value_info(scores, TensorProto.FLOAT, [1, nc, h, w]),
            helper.make_tensor_value_info(clipped, TensorProto.FLOAT, [1, 1, h, w]),
        ]
    del graph.output[:]
    graph.output.extend(outputs)
    _drop_dead_nodes(graph)
    model.metadata_props.add(
        key="coral_split_head", value=f"yolov8_dfl reg_max={reg_max} strides={strides}"
    )
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return SplitResult(target, reg_max, nc, strides, [o.name for o in outputs])


def _drop_dead_nodes(graph: Any) -> None:
    """Remove nodes (and initializers) no graph output depends on: the old decode tail."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(out in needed for out in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    used_inits = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used_inits)
    value_info = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
