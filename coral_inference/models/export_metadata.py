"""The metadata an Ultralytics ONNX export carries, and a package checked against it.

Ultralytics writes the task, class names (in order), input size and whether the
export is end-to-end into every ONNX file (as Python reprs, parsed here with
``ast.literal_eval``, never ``eval``). A manifest that contradicts them — a
pose export described as a detector with extra "classes", names in another
order, an ``nms=True`` export under a ``yolov8`` head — decodes garbage without
any error, so ``models validate`` and loading refuse it with the field to fix.
The importer reads the same metadata to write a manifest; this module sits below
it, so loading and validation never import the importer.
"""

from __future__ import annotations

import ast
from typing import Any

from coral_inference.models.errors import ManifestError
from coral_inference.models.package import ModelPackage

ULTRALYTICS_TASKS = {
    "detect": "object-detection",
    "segment": "instance-segmentation",
    "pose": "keypoint-detection",
    "classify": "classification",
    "obb": "obb",
}
BOX_TASK_HEADS = {"yolov8", "yolov8_dfl", "yolov5", "yolov5_single", "end2end"}


def literal(metadata: dict[str, str], key: str, default: Any = None) -> Any:
    """A Python-literal metadata value (``names``, ``imgsz``, ``args``, ``kpt_shape``)."""
    raw = metadata.get(key)
    if raw is None:
        return default
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def flag(metadata: dict[str, str], key: str) -> bool:
    value = literal(metadata, key, False)
    return value is True or str(value).lower() == "true"


def metadata_problems(
    package: ModelPackage, metadata: dict[str, str], backend: str = "onnxruntime"
) -> list[str]:
    """Contradictions between the manifest and Ultralytics export metadata (empty if none)."""
    if not (
        {"names", "task", "imgsz"} <= set(metadata) or "Ultralytics" in metadata.get("author", "")
    ):
        return []
    manifest = package.manifest
    head = package.head_for(backend)
    spec = package.input_for(backend)
    problems: list[str] = []
    task_name = metadata.get("task", "detect")
    task = ULTRALYTICS_TASKS.get(task_name, task_name)
    declared_task = getattr(manifest, "task", "object-detection")
    if task != declared_task or (task == "object-detection" and head.type not in BOX_TASK_HEADS):
        problems.append(
            f"task: the ONNX file is an Ultralytics {task_name!r} export ({task}) but the manifest "
            "declares "
            f"task {declared_task!r} with head {head.type!r}; its outputs would decode as garbage "
            "— "
            "re-import it: coral-runtime models import "
            f"{package.local_artifact_path(backend) or 'MODEL.onnx'}"
        )
    names_raw = literal(metadata, "names", {})
    names = [str(names_raw[k]) for k in sorted(names_raw)] if isinstance(names_raw, dict) else []
    if names and list(manifest.classes) != names:
        if sorted(manifest.classes) == sorted(names):
            problems.append(
                f"classes: same names as the export but in another order ({manifest.classes} vs "
                "the model's "
                f"{names}); class ids would be mislabelled — list them in the model's order"
            )
        else:
            problems.append(
                f"classes: the export was trained on {len(names)} classes {names[:10]}"
                f"{'...' if len(names) > 10 else ''} but the manifest lists "
                f"{len(manifest.classes)}: "
                f"{list(manifest.classes)[:10]}; use the export's names"
            )
    imgsz = literal(metadata, "imgsz")
    if (
        isinstance(imgsz, (list, tuple))
        and len(imgsz) == 2
        and [spec.height, spec.width] != [int(v) for v in imgsz]
    ):
        problems.append(
            f"input: the export's imgsz is {list(imgsz)} (height, width) but the manifest says "
            f"{spec.width}x{spec.height}; set input.height {imgsz[0]} and input.width {imgsz[1]}"
        )
    args: Any = literal(metadata, "args", {})
    end2end = flag(metadata, "end2end") or (isinstance(args, dict) and args.get("nms") is True)
    if task == "object-detection":
        if end2end and head.type != "end2end":
            problems.append(
                f"head.type: the export is end-to-end (end2end={metadata.get('end2end')}, nms="
                f"{args.get('nms') if isinstance(args, dict) else None}): its [1, K, 6] rows are "
                "final boxes; "
                f"head {head.type!r} would read them as raw candidates — set head.type: end2end"
            )
        if not end2end and head.type == "end2end":
            problems.append(
                "head.type: end2end, but the export is not end-to-end; set head.type: yolov8"
            )
    return problems


def session_metadata(session: Any) -> dict[str, str]:
    """ONNX metadata of an onnxruntime session (empty for other backends)."""
    inner = getattr(session, "inference_session", None)
    if inner is None or not hasattr(inner, "get_modelmeta"):
        return {}
    try:
        return dict(inner.get_modelmeta().custom_metadata_map or {})
    except (AttributeError, RuntimeError):  # a runtime without metadata support: nothing to compare
        return {}


def check_session_metadata(package: ModelPackage, backend: str, session: Any) -> None:
    """Raise ``ManifestError`` when the loaded export's metadata contradicts the manifest."""
    problems = metadata_problems(package, session_metadata(session), backend)
    if problems:
        raise ManifestError(package.manifest_path, problems)
