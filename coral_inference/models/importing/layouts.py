"""From an ONNX file's facts to a manifest: task, head, input and classes.

Two ways in:

* ``from_ultralytics``: the metadata every Ultralytics export carries (``task``,
  ``names``, ``imgsz``, ``stride``, ``kpt_shape``, ``end2end``, ``args.nms``) says what
  the model is; the real output shapes must agree with it, or the import is refused
  with the reason.
* ``from_outputs``: no metadata (rknn_model_zoo exports, RF-DETR, hand-made graphs):
  the head is recognised from the output tensors alone, and class names come from
  ``--classes`` (or ``--numbered-classes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coral_inference.models.decoders import describe_layout, grid_cells
from coral_inference.models.export_metadata import ULTRALYTICS_TASKS, flag, literal
from coral_inference.models.importing.errors import (
    MissingClassesError,
    ModelImportError,
    UnknownLayoutError,
)
from coral_inference.models.importing.onnx_facts import OnnxFacts

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Plan:
    """Everything the manifest needs except the artifacts."""

    task: str
    head: dict[str, Any]
    input: dict[str, Any]
    classes: list[str]
    keypoints: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def manifest_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "task": self.task,
            "classes": self.classes,
            "input": self.input,
            "head": self.head,
        }
        if self.keypoints is not None:
            fields["keypoints"] = self.keypoints
        return fields


def _shapes(facts: OnnxFacts) -> list[list[int]]:
    shapes = facts.static_outputs
    if shapes is None:
        raise ModelImportError(
            f"{facts.path}: output shapes {facts.output_shapes} are not static (a dynamic=True "
            "export); "
            f"export again with a fixed size (dynamic=False, imgsz=...) so Coral can check the head"
        )
    return shapes


def _input(
    facts: OnnxFacts, imgsz: tuple[int, int] | None = None, **overrides: Any
) -> dict[str, Any]:
    hw = imgsz or facts.input_hw
    if hw is None:
        raise ModelImportError(
            f"{facts.path}: the input {facts.input_shape} has no static image size; export with a "
            "fixed "
            f"imgsz or give --imgsz HEIGHTxWIDTH"
        )
    spec: dict[str, Any] = {
        "height": int(hw[0]),
        "width": int(hw[1]),
        "layout": facts.input_layout,
        "color": "RGB",
        "dtype": facts.input_dtype,
    }
    if facts.input_dtype == "uint8":
        spec["scale"] = 1.0
    spec.update(overrides)
    return spec


# --------------------------------------------------------------------------- Ultralytics


def from_ultralytics(facts: OnnxFacts, classes: list[str] | None = None) -> Plan:
    """Task, names, size and head from Ultralytics metadata, checked against the real outputs."""
    meta = facts.metadata
    task_name = str(meta.get("task", "detect"))
    if task_name not in ULTRALYTICS_TASKS:
        raise ModelImportError(
            f"{facts.path}: Ultralytics task {task_name!r} is not one Coral runs "
            f"({', '.join(ULTRALYTICS_TASKS)}); export a detect, segment, pose, classify or obb "
            "model"
        )
    names_raw = literal(meta, "names", {})
    if isinstance(names_raw, dict):
        names = [str(names_raw[k]) for k in sorted(names_raw)]
    elif isinstance(names_raw, (list, tuple)):
        names = [str(n) for n in names_raw]
    else:
        names = []
    if classes is not None:
        if names and len(classes) != len(names):
            raise ModelImportError(
                f"{facts.path}: --classes lists {len(classes)} names but the export was trained on "
                f"{len(names)} ({', '.join(names[:10])}{'...' if len(names) > 10 else ''}); drop "
                "--classes "
                f"(the export carries its names) or give exactly {len(names)}"
            )
        names = classes
    if not names:
        raise MissingClassesError(
            f"{facts.path}: the Ultralytics metadata has no class names; give --classes FILE"
        )
    imgsz = literal(meta, "imgsz")
    hw = (
        (int(imgsz[0]), int(imgsz[1]))
        if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2
        else facts.input_hw
    )
    if facts.input_hw is not None and hw is not None and tuple(facts.input_hw) != tuple(hw):
        raise ModelImportError(
            f"{facts.path}: metadata imgsz {list(hw)} differs from the graph's input "
            f"{facts.input_shape}; "
            f"the file was edited after export — export it again"
        )
    stride = int(literal(meta, "stride", 32) or 32)
    strides = [s for s in (8, 16, 32, 64) if s <= stride] if stride in (32, 64) else [8, 16, 32]
    args = literal(meta, "args", {})
    nms_embedded = isinstance(args, dict) and args.get("nms") is True
    end2end = flag(meta, "end2end") or nms_embedded
    shapes = _shapes(facts)
    task = ULTRALYTICS_TASKS[task_name]
    nc = len(names)
    provenance = {
        "format": "ultralytics-onnx",
        "ultralytics": {
            k: meta[k]
            for k in (
                "version",
                "task",
                "imgsz",
                "stride",
                "end2end",
                "args",
                "kpt_shape",
                "description",
            )
            if k in meta
        },
    }
    plan = Plan(
        task=task,
        head={},
        input=_input(facts, hw, pad_value=114),
        classes=names,
        metadata=provenance,
    )
    hw_size = (hw[1], hw[0]) if hw else None  # (width, height) for grid_cells
    cells = grid_cells(strides, hw_size) if hw_size else None
    what = f"{facts.path}: Ultralytics {task_name} export"

    def refuse(expected: str) -> ModelImportError:
        looks = describe_layout(shapes, nc, hw_size, strides)
        return ModelImportError(
            f"{what} should have {expected} but has outputs {shapes}"
            f"{'; they look like ' + looks if looks != 'no known layout' else ''}; "
            f"the file does not match its own metadata: export it again"
        )

    if task == "classification":
        if len(shapes) != 1 or shapes[0] != [1, nc]:
            raise refuse(f"one output [1, {nc}]")
        plan.head = {"type": "yolov8_cls"}
        plan.input["resize"] = "center-crop"
        return plan
    if end2end:
        extra = {"object-detection": 0, "obb": 1, "instance-segmentation": 32}.get(task)
        if task != "object-detection":
            raise ModelImportError(
                f"{what} is end-to-end (end2end/nms in its metadata: outputs {shapes}); Coral "
                "reads end-to-end "
                "outputs for detection only: export it with nms=False on a non-end2end "
                "architecture "
                f"(e.g. yolo export ... nms=False end2end=False) so the task head can decode it"
            )
        if len(shapes) != 1 or len(shapes[0]) != 3 or shapes[0][2] != 6 + (extra or 0):
            raise refuse("one output [1, K, 6] (x1 y1 x2 y2 score class)")
        plan.head = {"type": "end2end", "strides": strides}
        plan.notes.append(
            f"end-to-end export ({'NMS inside the model' if nms_embedded else 'NMS-free head'}): "
            f"boxes come out final, Coral runs no NMS"
        )
        return plan
    rows = {
        "object-detection": 4 + nc,
        "obb": 4 + nc + 1,
        "instance-segmentation": None,
        "keypoint-detection": None,
    }[task]
    if task == "keypoint-detection":
        kpt = literal(meta, "kpt_shape")
        if not (isinstance(kpt, (list, tuple)) and len(kpt) == 2):
            raise ModelImportError(
                f"{what} has no kpt_shape in its metadata; export it again with Ultralytics 8.1+"
            )
        k, dims = int(kpt[0]), int(kpt[1])
        rows = 4 + nc + k * dims
        kpt_names = literal(meta, "kpt_names")
        if isinstance(kpt_names, dict) and kpt_names:
            first = kpt_names[min(kpt_names)]
            names_list = [str(n) for n in first] if isinstance(first, (list, tuple)) else []
        else:
            names_list = []
        if len(names_list) != k:
            names_list = [f"kp{i}" for i in range(k)]
        plan.keypoints = {"names": names_list}
        plan.head = {"type": "yolov8_pose", "keypoint_dims": dims, "strides": strides}
    split = _split_layout(task, shapes, nc, strides, plan.head)
    if split is not None:
        plan.head = split
        plan.notes.append(f"per-stride (split) layout: head {split['type']}")
        return plan
    if task == "instance-segmentation":
        if len(shapes) != 2 or len(shapes[1]) != 4:
            raise refuse("two outputs: detections [1, 4+nc+32, N] and prototypes [1, 32, H/4, W/4]")
        rows = 4 + nc + shapes[1][1]
        plan.head = {"type": "yolov8_seg", "strides": strides}
    elif len(shapes) != 1:
        raise refuse(f"one output [1, {rows}, {cells or 'N'}]")
    if task == "object-detection":
        plan.head = {"type": "yolov8", "strides": strides}
    elif task == "obb":
        plan.head = {"type": "yolov8_obb", "strides": strides}
    det = shapes[0]
    if len(det) != 3 or det[1] != rows:
        raise refuse(f"an output [1, {rows}, {cells or 'N'}] ({rows} rows for {nc} classes)")
    if cells is not None and hw is not None and det[2] != cells:
        raise refuse(f"{cells} candidates for a {hw[1]}x{hw[0]} input with strides {strides}")
    return plan


def _split_layout(
    task: str, shapes: list[list[int]], nc: int, strides: list[int], head: dict[str, Any]
) -> dict[str, Any] | None:
    """The head of a per-stride rewrite of an Ultralytics export (``--split-head``, rknn_model_zoo
    style) that kept the export's metadata; None for the standard single-tensor layouts."""
    levels = len(strides)
    if len(shapes) <= 2 or not all(len(s) == 4 for s in shapes):
        return None
    if task == "object-detection" and len(shapes) in (2 * levels, 3 * levels):
        per = len(shapes) // levels
        boxes, scores = shapes[0::per], shapes[1::per]
        if all(b[1] % 4 == 0 for b in boxes) and all(c[1] == nc for c in scores):
            return {"type": "yolov8_dfl", "reg_max": boxes[0][1] // 4, "strides": strides}
    segment_counts = (3 * levels + 1, 4 * levels + 1)
    segment = task == "instance-segmentation" and len(shapes) in segment_counts
    if segment and shapes[0][1] % 4 == 0 and shapes[1][1] == nc:
        return {"type": "yolov8_seg_dfl", "reg_max": shapes[0][1] // 4, "strides": strides}
    if task == "keypoint-detection" and len(shapes) == levels + 1:
        channels = shapes[0][1] - nc
        if channels > 0 and channels % 4 == 0:
            return {
                "type": "yolov8_pose_dfl",
                "reg_max": channels // 4,
                "keypoint_dims": head.get("keypoint_dims", 3),
                "strides": strides,
            }
    return None


# --------------------------------------------------------------------------- no metadata


def numbered(count: int) -> list[str]:
    return [f"class{i}" for i in range(count)]


def from_outputs(
    facts: OnnxFacts, classes: list[str] | None, *, numbered_classes: bool = False
) -> Plan:
    """rknn_model_zoo, classic YOLOv5, end-to-end and RF-DETR layouts from the outputs alone."""
    shapes = _shapes(facts)
    hw = facts.input_hw
    hw_size = (hw[1], hw[0]) if hw else None
    what = f"{facts.path} (no Ultralytics metadata)"

    def names_for(count: int | None, layout: str) -> list[str]:
        if classes is not None:
            if count is not None and len(classes) != count:
                looks = describe_layout(shapes, len(classes), hw_size)
                raise UnknownLayoutError(
                    f"{what}: --classes lists {len(classes)} names but the {layout} outputs "
                    f"{shapes} hold "
                    f"{count} classes"
                    f"{'; they look like ' + looks if looks != 'no known layout' else ''}"
                )
            return classes
        if count is not None and numbered_classes:
            return numbered(count)
        raise MissingClassesError(
            f"{what}: {layout} with {count if count is not None else 'an unknown number of'} "
            "classes and no "
            f"class names in the file; give --classes FILE (one name per line, in training order)"
            + (
                " or --numbered-classes to call them class0, class1, ..."
                if count is not None
                else ""
            )
        )

    levels: list[tuple[int, int]] = []
    # rknn_model_zoo YOLOv8/11 (and the --split-head output): per stride box [1,4*r,H,W],
    # class scores [1,nc,H,W] and their sum.
    if len(shapes) in (6, 9) and all(len(s) == 4 for s in shapes):
        per = len(shapes) // 3
        boxes, scores = shapes[0::per], shapes[1::per]
        reg4 = {b[1] for b in boxes}
        ncs = {c[1] for c in scores}
        if (
            len(reg4) == 1
            and len(ncs) == 1
            and next(iter(reg4)) % 4 == 0
            and all(b[2:] == c[2:] for b, c in zip(boxes, scores, strict=True))
        ):
            levels = [(b[2], b[3]) for b in boxes]
            strides = [hw[0] // h for h, _ in levels] if hw else [8, 16, 32]
            names = names_for(next(iter(ncs)), "nine-output (rknn_model_zoo) YOLOv8 layout")
            head = {"type": "yolov8_dfl", "reg_max": next(iter(reg4)) // 4, "strides": strides}
            return Plan(
                "object-detection",
                head,
                _input(facts, pad_value=0),
                names,
                metadata={"format": "rknn_model_zoo-onnx"},
                notes=["rknn_model_zoo layout: letterbox padding 0 as in its demos"],
            )
    # rknn_model_zoo YOLOv5: three anchor heads [1, 3*(5+nc), H, W].
    if len(shapes) == 3 and all(len(s) == 4 for s in shapes) and len({s[1] for s in shapes}) == 1:
        channels = shapes[0][1]
        if channels % 3 == 0 and channels // 3 > 5:
            strides = [hw[0] // s[2] for s in shapes] if hw else [8, 16, 32]
            names = names_for(channels // 3 - 5, "three-head YOLOv5 layout")
            return Plan(
                "object-detection",
                {"type": "yolov5", "strides": strides},
                _input(facts, pad_value=0),
                names,
                metadata={"format": "rknn_model_zoo-onnx"},
                notes=[
                    "YOLOv5 anchor heads: default COCO anchors (set head.anchors if you trained "
                    "others)"
                ],
            )
    # RF-DETR: boxes [1, Q, 4] + logits [1, Q, nc(+1)] (either order).
    if len(shapes) in (2, 3) and all(len(s) == 3 for s in shapes[:2]):
        boxes = [s for s in shapes[:2] if s[2] == 4]
        logits = [s for s in shapes[:2] if s[2] != 4]
        if len(boxes) == 1 and len(logits) == 1 and boxes[0][1] == logits[0][1]:
            count = logits[0][2]
            if classes is not None and len(classes) in (count, count - 1):
                names = classes
            else:
                names = names_for(count, "RF-DETR layout (boxes [1, Q, 4] + logits [1, Q, nc])")
            head_type = "rfdetr_seg" if len(shapes) == 3 else "rfdetr"
            task = "instance-segmentation" if len(shapes) == 3 else "object-detection"
            return Plan(
                task,
                {"type": head_type},
                _input(facts, resize="stretch", mean=IMAGENET_MEAN, std=IMAGENET_STD),
                names,
                metadata={"format": "rfdetr-onnx"},
                notes=["RF-DETR: ImageNet normalisation, stretch resize, no NMS"],
            )
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
        _, a, b = shapes[0]
        cells = grid_cells([8, 16, 32], hw_size) if hw_size else None
        if b == 6 and a in (100, 300):
            names = names_for(None, "end-to-end [1, K, 6] layout")
            return Plan(
                "object-detection",
                {"type": "end2end"},
                _input(facts, pad_value=114),
                names,
                metadata={"format": "onnx"},
                notes=["end-to-end export: Coral runs no NMS"],
            )
        if cells is not None and a == 3 * cells and b > 5:
            names = names_for(b - 5, "classic YOLOv5 [1, N, 5+nc] layout")
            return Plan(
                "object-detection",
                {"type": "yolov5_single"},
                _input(facts, pad_value=114),
                names,
                metadata={"format": "yolov5-onnx"},
            )
        if cells is not None and b == cells and a > 4:
            count = a - 4
            if classes is not None and len(classes) != count:
                looks = describe_layout(shapes, len(classes), hw_size)
                raise UnknownLayoutError(
                    f"{what}: the output {shapes[0]} holds {count} rows after the box but "
                    "--classes lists "
                    f"{len(classes)} names"
                    f"{'; it looks like ' + looks if looks != 'no known layout' else ''}"
                )
            names = names_for(count, "single-output YOLOv8 [1, 4+nc, N] layout")
            return Plan(
                "object-detection",
                {"type": "yolov8"},
                _input(facts, pad_value=114),
                names,
                metadata={"format": "onnx"},
                notes=[
                    (
                        "no metadata: [1, 4+nc, N] read as a detector; a pose or OBB export "
                        "without "
                        "metadata has the same shape — re-export with Ultralytics to keep its task"
                    )
                ],
            )
    looks = describe_layout(shapes, len(classes) if classes else None, hw_size)
    raise UnknownLayoutError(
        f"{what}: outputs {shapes} fit no layout Coral recognises"
        f"{' (they look like ' + looks + ')' if looks != 'no known layout' else ''}; known: "
        "Ultralytics exports "
        "(with their metadata), rknn_model_zoo nine-output YOLOv8 or three-head YOLOv5, classic "
        "YOLOv5 "
        "[1, N, 5+nc], end-to-end [1, K, 6], RF-DETR; write coral-model.yaml by hand "
        "(docs/models.md)"
    )
