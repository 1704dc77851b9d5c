"""``coral-runtime models import``: a model file (or Roboflow model) in, a validated package out.

Sources:

* an Ultralytics ONNX export of any task — everything from its metadata;
* an ONNX file without metadata (rknn_model_zoo, classic YOLOv5, RF-DETR) — the head
  from its output tensors, class names from ``classes`` (or ``numbered_classes``);
* a ``.rknn`` file plus the ONNX it came from (``onnx=``);
* an ``inference`` model cache directory (``<cache>/<project>/<version>/``), or a
  Roboflow model id through a ``fetcher`` the caller supplies (the CLI's uses
  ``inference``'s own download code: this layer never imports ``inference``).

``import_model`` writes ``coral-model.yaml`` with the sha256 of every artifact,
loads it back, and — given a runtime context — runs one frame on every available
backend. ``ensure_onnx_package`` is the same for a bare ``.onnx`` used as a model
name: the package is built once in Coral's cache.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from coral_inference.models.importing.errors import (
    MissingClassesError,
    ModelImportError,
    UnknownLayoutError,
)
from coral_inference.models.importing.layouts import Plan, from_outputs, from_ultralytics
from coral_inference.models.importing.onnx_facts import OnnxFacts, read_onnx
from coral_inference.models.importing.roboflow_cache import is_roboflow_cache_dir, read_cache_dir
from coral_inference.models.importing.split_head import split_head
from coral_inference.models.package import (
    MANIFEST_NAME,
    HeadSpec,
    ModelPackage,
    find_manifest,
    load_package,
    sha256_of,
)
from coral_inference.models.validation import BackendHost, check_package

__all__ = [
    "ImportResult",
    "MissingClassesError",
    "ModelImportError",
    "UnknownLayoutError",
    "ensure_onnx_package",
    "import_model",
    "is_roboflow_id",
]

logger = logging.getLogger("coral_inference.models.importing")

_ROBOFLOW_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?/\d+$")


@dataclass
class ImportResult:
    package: ModelPackage
    source: str
    kind: str
    notes: list[str] = field(default_factory=list)
    checks: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "package": str(self.package.root),
            "name": self.package.name,
            "source": self.source,
            "kind": self.kind,
            "task": getattr(self.package.manifest, "task", "object-detection"),
            "head": self.package.head.type,
            "classes": self.package.classes,
            "backends": self.package.backends,
            "notes": self.notes,
            "checks": [c.as_dict() for c in self.checks],
        }


def is_roboflow_id(source: str) -> bool:
    """``project/version`` or ``workspace/project/version`` (and not an existing path)."""
    return bool(_ROBOFLOW_ID.match(source)) and not Path(source).exists()


def read_classes_file(path: Path) -> list[str]:
    if not path.is_file():
        raise ModelImportError(
            f"--classes {path}: no such file (one class name per line, in training order)"
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml", ".json"):
        data = yaml.safe_load(text)
        data = data.get("names", data) if isinstance(data, dict) else data
        if isinstance(data, dict):
            return [str(data[k]) for k in sorted(data)]
        if isinstance(data, list):
            return [str(v) for v in data]
        raise ModelImportError(f"--classes {path}: expected a list of names or a names: mapping")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ModelImportError(f"--classes {path}: the file is empty")
    return names


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "model"


def plan_for(facts: OnnxFacts, classes: list[str] | None, numbered_classes: bool) -> Plan:
    if facts.is_ultralytics:
        return from_ultralytics(facts, classes)
    return from_outputs(facts, classes, numbered_classes=numbered_classes)


def import_model(
    source: str | Path,
    *,
    name: str | None = None,
    out: str | Path | None = None,
    classes_file: str | Path | None = None,
    numbered_classes: bool = False,
    onnx: str | Path | None = None,
    rknn: str | Path | None = None,
    rknn_box_units: str = "pixels",
    force: bool = False,
    context: BackendHost | None = None,
    fetcher: Callable[[str], Path] | None = None,
    split: bool = False,
) -> ImportResult:
    """Build and validate a package from ``source``; see the module docstring.

    ``split`` (``--split-head``) adds the nine-output rewrite of a single-output detect export as
    the package's RKNN conversion source, so ``models convert --int8`` works.
    """
    classes = read_classes_file(Path(classes_file)) if classes_file else None
    text = str(source)
    path = Path(text).expanduser()
    kind = "onnx"
    extra_metadata: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    rknn_path = Path(rknn) if rknn else None
    if not path.exists() and is_roboflow_id(text):
        if fetcher is None:
            raise ModelImportError(
                f"{text}: a Roboflow model id, but no fetcher was given; use coral-runtime models "
                f"import {text}"
            )
        path = fetcher(text)
        kind = "roboflow"
        extra_metadata["source"] = {"kind": "roboflow", "model_id": text}
        name = name or _slug(text.replace("/", "-"))
    if not path.exists():
        raise ModelImportError(
            f"{text}: no such file or directory, and not a Roboflow model id (project/version or "
            "workspace/project/version); give an .onnx export, an .rknn with --onnx, an inference "
            "cache "
            f"directory or a Roboflow id"
        )
    if path.is_dir():
        if find_manifest(path) is not None:
            raise ModelImportError(
                f"{path}: already a Coral model package; use it directly or run models validate"
            )
        if not is_roboflow_cache_dir(path):
            raise ModelImportError(
                f"{path}: a directory, but neither a model package nor an inference model cache "
                "directory "
                "(<cache>/<project>/<version>/ with environment.json and weights.onnx); give the "
                ".onnx file"
            )
        entry = read_cache_dir(path)
        if entry.unsupported_steps:
            raise ModelImportError(
                f"{path}: the Roboflow model was trained with preprocessing Coral does not "
                "reproduce "
                f"({', '.join(entry.unsupported_steps)} in environment.json PREPROCESSING); "
                "detections would "
                f"drift — retrain without them or write coral-model.yaml by hand"
            )
        if kind != "roboflow":
            kind = "roboflow-cache"
            extra_metadata["source"] = {"kind": "roboflow", "cache_dir": str(path)}
        extra_metadata["source"]["preprocessing"] = entry.preprocessing
        if entry.model_type_name:
            extra_metadata["source"]["model_type"] = entry.model_type_name
        classes = classes or entry.classes or None
        onnx_path = entry.weights
        name = name or _slug(f"{path.parent.name}-{path.name}")
        resize, pad = entry.resize
        notes.append(
            f"Roboflow preprocessing: resize {resize!r} (from "
            f"{entry.preprocessing.get('resize', {})})"
        )
        roboflow_input: dict[str, Any] | None = {"resize": resize, "pad_value": pad}
    else:
        roboflow_input = None
        if path.suffix.lower() == ".rknn":
            if onnx is None:
                raise ModelImportError(
                    f"{path}: an .rknn file alone cannot be checked (its outputs and metadata are "
                    "only readable "
                    f"from the ONNX it was converted from); give --onnx FILE"
                )
            rknn_path, onnx_path, kind = path, Path(onnx), "rknn+onnx"
        else:
            onnx_path = path
    if rknn_path is not None and not rknn_path.is_file():
        raise ModelImportError(f"--rknn {rknn_path}: no such file")
    facts = read_onnx(onnx_path)
    plan = plan_for(facts, classes, numbered_classes)
    if roboflow_input is not None:
        plan.input.update(roboflow_input)
    plan.metadata.update(extra_metadata)
    plan.notes[:0] = notes
    name = name or _slug(onnx_path.stem)
    target = Path(out).expanduser() if out else Path.cwd() / name
    package = write_package(
        target,
        name,
        plan,
        onnx_path,
        rknn_path=rknn_path,
        rknn_box_units=rknn_box_units,
        force=force,
        source=text,
    )
    if split:
        package = add_split_head(package, plan)
        plan.notes.append(
            "--split-head: model_split.onnx (nine outputs, head yolov8_dfl) is the RKNN conversion "
            "source; its detections equal the single-output model's"
        )
    checks = []
    if context is not None:
        checks = check_package(package, context)
        failed = [c for c in checks if c.status == "fail"]
        if failed:
            raise ModelImportError(
                f"{text}: the package written to {package.root} fails validation: "
                + "; ".join(f"{c.name}: {c.detail}" for c in failed)
            )
    return ImportResult(package, text, kind, plan.notes, checks)


def write_package(
    target: Path,
    name: str,
    plan: Plan,
    onnx_path: Path,
    *,
    rknn_path: Path | None = None,
    rknn_box_units: str = "pixels",
    force: bool = False,
    source: str = "",
) -> ModelPackage:
    """Copy the artifacts into ``target`` and write the manifest (sha256 of each); load it back."""
    if target.exists() and any(target.iterdir()):
        if not force:
            raise ModelImportError(
                f"{target}: exists and is not empty; choose --out DIR or add --force to replace it"
            )
        if find_manifest(target) is None:
            raise ModelImportError(
                f"{target}: exists and is not a Coral package; refusing to replace it with --force"
            )
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, Any] = {}
    model_file = target / "model.onnx"
    shutil.copyfile(onnx_path, model_file)
    artifacts["onnxruntime"] = {"file": model_file.name, "sha256": sha256_of(model_file)}
    if rknn_path is not None:
        rknn_file = target / "model.rknn"
        shutil.copyfile(rknn_path, rknn_file)
        entry: dict[str, Any] = {
            "file": rknn_file.name,
            "sha256": sha256_of(rknn_file),
            "input": {"layout": "NHWC", "dtype": "uint8"},
        }
        if rknn_box_units != "pixels":
            entry["head"] = {**plan.head, "box_units": rknn_box_units}
        artifacts["rknn"] = entry
    manifest = {
        "name": name,
        "description": f"imported by coral-runtime models import from {source or onnx_path}",
        **plan.manifest_fields(),
        "artifacts": artifacts,
        "metadata": {
            "imported_from": str(source or onnx_path),
            "source_sha256": sha256_of(onnx_path),
            **plan.metadata,
        },
    }
    (target / MANIFEST_NAME).write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return load_package(target)


def add_split_head(package: ModelPackage, plan: Plan) -> ModelPackage:
    """Write ``model_split.onnx`` as ``convert.rknn.onnx``, refused unless it decodes the same."""

    if plan.head.get("type") != "yolov8" or plan.task != "object-detection":
        raise ModelImportError(
            f"--split-head rewrites single-output detection exports (head yolov8); this one is "
            f"{plan.task} with head {plan.head.get('type')!r}"
        )
    source = package.local_artifact_path("onnxruntime")
    assert source is not None
    result = split_head(
        source, package.root / "model_split.onnx", (package.input.height, package.input.width)
    )
    head = {"type": "yolov8_dfl", "reg_max": result.reg_max, "strides": result.strides}
    _check_split_equivalence(package, result.path, head)
    data = yaml.safe_load(package.manifest_path.read_text(encoding="utf-8"))
    data["convert"] = {"rknn": {"onnx": result.path.name, "head": head}}
    data.setdefault("metadata", {})["split_head"] = {
        "file": result.path.name,
        "sha256": sha256_of(result.path),
        "outputs": result.output_names,
    }
    package.manifest_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_package(package.root)


def _check_split_equivalence(package: ModelPackage, split_path: Path, head: dict[str, Any]) -> None:
    """Both graphs on the same synthetic frames: identical classes, boxes within 0.01 px."""

    # heavy: imports OpenCV (through models.preprocess)
    from coral_inference.backends.onnxruntime import OnnxRuntimeBackend

    # heavy: models.detector imports supervision (~3 s with its scipy, PIL)
    from coral_inference.models.detector import Detector

    backend = OnnxRuntimeBackend()
    whole = Detector(package, backend.prepare_session(package))
    split = Detector(
        package,
        backend.open_session(split_path, model=f"{package.name} (split)"),
        head=HeadSpec.model_validate(head),
    )
    try:
        for seed in range(2):
            rng = np.random.default_rng(seed)  # smooth random blobs: image-dependent outputs
            small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            frame = np.kron(
                small,
                np.ones((package.input.height // 8 + 1, package.input.width // 8 + 1, 1), np.uint8),
            )
            a, b = whole.detect(frame, confidence=0.05), split.detect(frame, confidence=0.05)
            same = (
                len(a) == len(b)
                and np.array_equal(np.sort(np.asarray(a.class_id)), np.sort(np.asarray(b.class_id)))
                and (
                    not len(a)
                    or float(np.abs(np.sort(a.xyxy, axis=0) - np.sort(b.xyxy, axis=0)).max()) < 0.01
                )
            )
            if not same:
                raise ModelImportError(
                    "--split-head: the rewritten graph does not decode like "
                    f"{package.local_artifact_path('onnxruntime')} "
                    f"({len(a)} vs {len(b)} detections on a test frame); this export's head is not "
                    "the stock "
                    "Ultralytics Detect — convert without --int8, or export with the airockchip "
                    "fork"
                )
    finally:
        whole.close()
        split.close()


# --------------------------------------------------------------------------- bare .onnx as a model


def package_cache_dir() -> Path:
    """``$CORAL_CACHE_DIR/packages`` (default ``~/.cache/coral/packages``)."""
    base = (
        os.environ.get("CORAL_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coral"
    )
    return Path(base) / "packages"


def ensure_onnx_package(path: Path) -> Path:
    """The package directory for a bare ``.onnx`` model, built in the cache on first use."""
    path = path.expanduser().resolve()
    digest = sha256_of(path)
    target = package_cache_dir() / f"{_slug(path.stem)}-{digest[:12]}"
    if find_manifest(target) is not None:
        return target
    facts = read_onnx(path)
    if not facts.is_ultralytics:
        raise MissingClassesError(
            f"{path}: a bare .onnx works as a model only when it carries Ultralytics metadata "
            "(class names, "
            "task, input size); this one has none — build a package: coral-runtime models import "
            f"{path} "
            f"--classes FILE"
        )
    plan = from_ultralytics(facts)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    write_package(tmp, _slug(path.stem), plan, path, source=str(path))
    try:
        tmp.rename(target)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    logger.warning(
        "model %s: no package given, built one from its Ultralytics metadata in %s (%s, head %s, "
        "%d classes)",
        path,
        target,
        plan.task,
        plan.head["type"],
        len(plan.classes),
    )
    return target
