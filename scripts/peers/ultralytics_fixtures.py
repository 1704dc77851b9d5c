"""Record Ultralytics' own predictions for each task into tests/fixtures/peers/ultralytics/.

Run inside the Ultralytics peer environment (never Coral's)::

    venv="$(bash scripts/peer-env ultralytics)"
    YOLO_OFFLINE=1 "$venv/bin/python" scripts/peers/ultralytics_fixtures.py

For segment, pose, obb and classify it builds a model from Ultralytics' own YAML
(``yolov8-<task>.yaml``) at a tiny custom width (0.0625, max 128 channels) so the
ONNX export stays well under 1 MB, gives it He-initialised convolutions and
recalibrates batch norm on a few drawn frames (random weights alone give constant
outputs), exports ONNX with Ultralytics' exporter and then runs Ultralytics'
predictor *on that ONNX file* over the committed frames. What it records per task:

* ``model.onnx`` and ``meta.json`` (Ultralytics version, task, classes, image size,
  thresholds, the export's metadata, keypoint shape);
* ``expected.npz``: per frame ``boxes`` xyxy (source pixels), ``conf``, ``cls``;
  segment ``masks`` (source-resolution, ``retina_masks=True``, np.packbits along
  the flattened mask); pose ``keypoints`` ``(n, K, 3)``; obb ``xywhr`` and
  ``xyxyxyxy``; classify ``probs`` and ``top5``.
* For segment and pose, ``split.onnx``: the same network with the rknn_model_zoo
  split layout, made by ONNX graph surgery that exposes the per-level head tensors of
  the exported graph. Segment (yolov8_seg): per stride DFL box logits
  ``[1, 64, H, W]``, class scores ``[1, nc, H, W]`` (sigmoid), clipped score sum
  ``[1, 1, H, W]``, mask coefficients ``[1, nm, H, W]``; prototypes ``[1, nm, h, w]``
  last. Pose (yolov8_pose): per stride ``[1, 64+nc, H, W]`` (DFL box logits then
  class logits), then the decoded keypoints of all strides ``[1, K, 3, N]`` last.

Frames are drawn here (shapes on a textured background) and saved as PNGs next to
the fixtures so the tests read exactly the pixels Ultralytics saw.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import ultralytics  # noqa: E402
import yaml  # noqa: E402
from ultralytics import YOLO  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "peers" / "ultralytics"
CLASSES = ["circle", "square", "triangle"]
TASKS = {
    # task: (yaml, imgsz, classes, extra yaml keys)
    "segment": ("yolov8-seg.yaml", 256, CLASSES, {}),
    "pose": ("yolov8-pose.yaml", 256, ["shape", "blob"], {"kpt_shape": [5, 3]}),
    "obb": ("yolov8-obb.yaml", 256, CLASSES, {}),
    "classify": (
        "yolov8-cls.yaml",
        128,
        CLASSES + ["ring", "star", "cross", "arrow", "heart", "moon", "blob"],
        {},
    ),
}
FRAME_SIZES = [(320, 224), (224, 288), (256, 256)]  # (width, height)
SEED = 7
TARGET_DETECTIONS = 12


def draw_frames() -> list[np.ndarray]:
    rng = np.random.default_rng(SEED)
    frames = []
    for index, (width, height) in enumerate(FRAME_SIZES):
        noise = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        frame = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        for _ in range(6):
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            cx, cy = int(rng.integers(20, width - 20)), int(rng.integers(20, height - 20))
            size = int(rng.integers(12, 48))
            kind = rng.integers(0, 3)
            if kind == 0:
                cv2.circle(frame, (cx, cy), size, colour, -1)
            elif kind == 1:
                cv2.rectangle(frame, (cx - size, cy - size), (cx + size, cy + size), colour, -1)
            else:
                pts = np.array(
                    [[cx, cy - size], [cx - size, cy + size], [cx + size, cy + size]], np.int32
                )
                cv2.fillPoly(frame, [pts], colour)
        frames.append(frame)
        (OUT / "frames").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(OUT / "frames" / f"frame{index}.png"), frame)
    return frames


def tiny_yaml(name: str, classes: list[str], extra: dict, directory: Path) -> Path:
    source = Path(ultralytics.__file__).parent / "cfg" / "models" / "v8" / name
    config = yaml.safe_load(source.read_text())
    config.update(extra)
    config["nc"] = len(classes)
    config["scales"] = {"n": [0.33, 0.0625, 128]}
    config["scale"] = "n"
    path = directory / name.replace("yolov8", "yolov8n-tiny")
    path.write_text(yaml.safe_dump(config))
    return path


def randomise(model: torch.nn.Module, frames: list[np.ndarray], imgsz: int) -> None:
    """He-initialise convolutions/linears (not the fixed DFL conv) and recalibrate batch norm."""
    torch.manual_seed(SEED)
    for name, module in model.named_modules():
        if ".dfl" in name or name.endswith("dfl"):
            continue
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.weight.requires_grad:
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    batch = np.stack([cv2.resize(f, (imgsz, imgsz)) for f in frames * 3])[..., ::-1]
    tensor = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).float() / 255
    model.train()
    with torch.no_grad():
        model(tensor)
        for module in model.modules():
            if isinstance(
                module, torch.nn.Linear
            ):  # classifier: spread the logits so the ranking is clear
                module.weight.mul_(8.0)
    model.eval()


def build(task: str, workdir: Path, frames: list[np.ndarray]) -> tuple[YOLO, Path, dict]:
    name, imgsz, classes, extra = TASKS[task]
    yaml_path = tiny_yaml(name, classes, extra, workdir)
    yolo = YOLO(str(yaml_path), task=task)
    yolo.model.names = dict(enumerate(classes))
    randomise(yolo.model, frames, imgsz)
    exported = Path(yolo.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, batch=1))
    return yolo, exported, {"imgsz": imgsz, "classes": classes, **extra}


def onnx_metadata(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path))
    return {p.key: p.value for p in model.metadata_props}


def pick_confidence(model: YOLO, frames: list[np.ndarray], imgsz: int) -> float:
    """Halfway between two neighbouring scores: ~TARGET_DETECTIONS survive, none is borderline."""
    result = model.predict(frames[0], imgsz=imgsz, conf=0.001, iou=0.7, verbose=False)[0]
    confs = np.sort((result.obb if result.obb is not None else result.boxes).conf.numpy())[::-1]
    if len(confs) <= TARGET_DETECTIONS:
        return float(max(confs[-1] / 2, 0.001)) if len(confs) else 0.001
    return float((confs[TARGET_DETECTIONS - 1] + confs[TARGET_DETECTIONS]) / 2)


def record(task: str, model_path: Path, frames: list[np.ndarray], info: dict) -> tuple[dict, dict]:
    model = YOLO(str(model_path), task=task)
    imgsz = info["imgsz"]
    arrays: dict[str, np.ndarray] = {}
    settings: dict = {"imgsz": imgsz}
    if task == "classify":
        for index, frame in enumerate(frames):
            result = model.predict(frame, imgsz=imgsz, verbose=False)[0]
            arrays[f"f{index}_probs"] = result.probs.data.numpy().astype(np.float32)
            arrays[f"f{index}_top5"] = np.asarray(result.probs.top5, np.int64)
        return arrays, settings
    conf = pick_confidence(model, frames, imgsz)
    settings.update(conf=conf, iou=0.7, max_det=300, retina_masks=True)
    for index, frame in enumerate(frames):
        result = model.predict(
            frame, imgsz=imgsz, conf=conf, iou=0.7, retina_masks=True, verbose=False
        )[0]
        if task == "obb":
            arrays[f"f{index}_xywhr"] = result.obb.xywhr.numpy().astype(np.float32)
            arrays[f"f{index}_xyxyxyxy"] = result.obb.xyxyxyxy.numpy().astype(np.float32)
            arrays[f"f{index}_boxes"] = result.obb.xyxy.numpy().astype(np.float32)
            arrays[f"f{index}_conf"] = result.obb.conf.numpy().astype(np.float32)
            arrays[f"f{index}_cls"] = result.obb.cls.numpy().astype(np.int64)
            continue
        arrays[f"f{index}_boxes"] = result.boxes.xyxy.numpy().astype(np.float32)
        arrays[f"f{index}_conf"] = result.boxes.conf.numpy().astype(np.float32)
        arrays[f"f{index}_cls"] = result.boxes.cls.numpy().astype(np.int64)
        if task == "segment":
            masks = (
                result.masks.data.numpy().astype(bool)
                if result.masks is not None
                else np.zeros((0, *frame.shape[:2]), bool)
            )
            assert masks.shape[1:] == frame.shape[:2], (masks.shape, frame.shape)
            arrays[f"f{index}_masks"] = np.packbits(masks.reshape(len(masks), -1), axis=1)
            arrays[f"f{index}_mask_shape"] = np.asarray(masks.shape, np.int64)
        if task == "pose":
            arrays[f"f{index}_keypoints"] = result.keypoints.data.numpy().astype(np.float32)
    return arrays, settings


def split_layout(task: str, exported: Path, destination: Path, info: dict) -> dict:
    """The rknn_model_zoo split layout of the same graph, by exposing per-level head tensors."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(exported))
    graph = model.graph
    nc = len(info["classes"])
    imgsz = info["imgsz"]
    strides = [8, 16, 32]
    grids = [imgsz // s for s in strides]
    shapes = _inferred_shapes(model)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def level_convs(grid: int) -> dict[int, str]:
        """The head's last convs of one level ([1, C, grid, grid], read only by Reshapes), by C."""
        found = {}
        for node in graph.node:
            shape = shapes.get(node.output[0])
            users = consumers.get(node.output[0], [])
            is_conv = node.op_type == "Conv" and shape and shape[2:] == [grid, grid] and users
            if is_conv and all(u.op_type == "Reshape" for u in users):
                found[shape[1]] = node.output[0]
        return found

    outputs, new_nodes, initializers = [], [], []
    extra_name = None
    for level, grid in enumerate(grids):
        convs = level_convs(grid)
        box, cls = convs[64], convs[nc]
        if task == "pose":  # rknn_model_zoo yolov8_pose: box DFL ++ class logits, [1, 64+nc, H, W]
            joined = f"split_boxcls{level}"
            new_nodes.append(helper.make_node("Concat", [box, cls], [joined], axis=1))
            outputs.append((joined, [1, 64 + nc, grid, grid]))
            continue
        sig = f"split_sig{level}"
        clipped, summed = f"split_clip{level}", f"split_sum{level}"
        new_nodes += [
            helper.make_node("Sigmoid", [cls], [sig]),
            helper.make_node("ReduceSum", [sig, "split_axes1"], [summed], keepdims=1),
            helper.make_node("Clip", [summed, "split_zero", "split_one"], [clipped]),
        ]
        outputs += [
            (box, [1, 64, grid, grid]),
            (sig, [1, nc, grid, grid]),
            (clipped, [1, 1, grid, grid]),
        ]
        if task == "segment":
            outputs.append((convs[32], [1, 32, grid, grid]))
    initializers += [
        numpy_helper.from_array(np.array([1], np.int64), "split_axes1"),
        numpy_helper.from_array(np.array(0, np.float32), "split_zero"),
        numpy_helper.from_array(np.array(1, np.float32), "split_one"),
    ]
    if task == "segment":
        proto = [o for o in graph.output if len(shapes.get(o.name, [])) == 4][0]
        outputs.append((proto.name, list(shapes[proto.name])))
    if task == "pose":
        kpt_shape = info["kpt_shape"]
        head = graph.output[0].name  # [1, 4+nc+K*3, N]
        extra_name = "split_keypoints"
        new_nodes += [
            helper.make_node(
                "Slice", [head, "split_kstart", "split_kend", "split_kaxis"], ["split_kflat"]
            ),
            helper.make_node("Reshape", ["split_kflat", "split_kshape"], [extra_name]),
        ]
        rows = 4 + nc + kpt_shape[0] * kpt_shape[1]
        initializers += [
            numpy_helper.from_array(np.array([4 + nc], np.int64), "split_kstart"),
            numpy_helper.from_array(np.array([rows], np.int64), "split_kend"),
            numpy_helper.from_array(np.array([1], np.int64), "split_kaxis"),
            numpy_helper.from_array(
                np.array([1, kpt_shape[0], kpt_shape[1], -1], np.int64), "split_kshape"
            ),
        ]
        total = sum(g * g for g in grids)
        outputs.append((extra_name, [1, kpt_shape[0], kpt_shape[1], total]))
    graph.node.extend(new_nodes)
    graph.initializer.extend(initializers)
    del graph.output[:]
    for name, shape in outputs:
        graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape))
    onnx.checker.check_model(model)
    onnx.save(model, str(destination))
    return {"outputs": [[name, shape] for name, shape in outputs]}


def _inferred_shapes(model) -> dict[str, list[int]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in (
        list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    ):
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = dims
    return shapes


def export_full_size(task: str, destination: Path, imgsz: int = 640) -> None:
    """A YOLOv8n-<task> at its real size (scale n, 80 classes; pose 17 keypoints), random weights.

    For ``bench/bench_models.py --tasks``: the model's own inference time is the yardstick of the
    post-processing share, so the network must be the real architecture, not the tiny fixture one.
    """
    names = {"segment": "yolov8n-seg.yaml", "pose": "yolov8n-pose.yaml", "obb": "yolov8n-obb.yaml"}
    rng = np.random.default_rng(SEED)
    frames = [
        cv2.resize(rng.integers(0, 255, (45, 80, 3), dtype=np.uint8), (1280, 720)) for _ in range(2)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        yolo = YOLO(names[task], task=task)
        randomise(yolo.model, frames, imgsz)
        exported = Path(
            yolo.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, batch=1)
        )
        destination.write_bytes(exported.read_bytes())


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--export-full":
        export_full_size(sys.argv[2], Path(sys.argv[3]).resolve())
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    frames = draw_frames()
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)  # the exporter writes next to the YAML's stem
        for task in sys.argv[1:] or list(TASKS):
            _, exported, info = build(task, workdir, frames)
            directory = OUT / task
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / "model.onnx"
            target.write_bytes(exported.read_bytes())
            arrays, settings = record(task, target, frames, info)
            np.savez_compressed(directory / "expected.npz", **arrays)
            metadata = onnx_metadata(target)
            meta = {
                "ultralytics": ultralytics.__version__,
                "torch": torch.__version__,
                "task": task,
                "yaml": TASKS[task][0],
                "scale": {"depth": 0.33, "width": 0.0625, "max_channels": 128},
                "classes": info["classes"],
                "frames": [f"frame{i}.png" for i in range(len(frames))],
                "settings": settings,
                "onnx_metadata": metadata,
                "names": ast.literal_eval(metadata["names"]) if "names" in metadata else None,
            }
            if "kpt_shape" in info:
                meta["kpt_shape"] = info["kpt_shape"]
            if task in ("segment", "pose"):
                meta["split"] = split_layout(task, target, directory / "split.onnx", info)
            (directory / "meta.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
            summary[task] = {k: list(v.shape) for k, v in arrays.items() if k.startswith("f0_")}
            print(task, summary[task], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
