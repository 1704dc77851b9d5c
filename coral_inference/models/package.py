"""Model packages: a directory holding ``coral-model.yaml`` and the artifacts it names.

The manifest says everything a backend and a decoder need to run the model
without guessing: task, class names, input geometry, layout, colour order, dtype
and normalisation, resize mode, head type and one artifact per backend with its
sha256. ``load_package`` validates it all and reports every problem with the
file and the dotted field.

Example ``coral-model.yaml``::

    name: coral-demo
    task: object-detection
    classes: [circle, square, triangle]
    input: {width: 320, height: 320, layout: NCHW, color: RGB, dtype: float32,
            scale: 0.00392156862745098, resize: letterbox, pad_value: 114}
    head: {type: yolov8}
    artifacts:
      onnxruntime: {file: model.onnx, sha256: 9f86d0…}
      rknn: {file: model.rknn, sha256: 60303a…, target_platform: rk3588,
             input: {layout: NHWC, dtype: uint8}}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coral_inference.config.errors import validation_problems
from coral_inference.models.errors import ArtifactNotFoundError, ManifestError, PackageNotFoundError

MANIFEST_NAME = "coral-model.yaml"
MANIFEST_NAMES = (MANIFEST_NAME, "coral-model.yml", "coral-model.json")
ZOO_DIR = Path(__file__).resolve().parent / "zoo"

# Ultralytics YOLOv5 COCO anchors (pixels), one row per stride 8/16/32.
YOLOV5_DEFAULT_ANCHORS: list[list[float]] = [
    [10, 13, 16, 30, 33, 23],
    [30, 61, 62, 45, 59, 119],
    [116, 90, 156, 198, 373, 326],
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """What the network's input tensor looks like and how a frame becomes one."""

    width: int = Field(default=..., gt=0, description="Input width in pixels.")
    height: int = Field(default=..., gt=0, description="Input height in pixels.")
    layout: Literal["NCHW", "NHWC"] = Field(default="NCHW", description="Tensor layout.")
    color: Literal["RGB", "BGR"] = Field(
        default="RGB", description="Channel order the model expects."
    )
    dtype: Literal["float32", "float16", "uint8"] = Field(
        default="float32",
        description="Tensor dtype; uint8 inputs are fed raw (normalisation is inside the model).",
    )
    scale: float = Field(
        default=1 / 255, gt=0, description="Pixel values are multiplied by this first."
    )
    mean: tuple[float, float, float] = Field(
        default=(0.0, 0.0, 0.0), description="Subtracted after scaling, per channel."
    )
    std: tuple[float, float, float] = Field(
        default=(1.0, 1.0, 1.0), description="Divided by after the mean, per channel."
    )
    resize: Literal["letterbox", "stretch", "center-crop"] = Field(
        default="letterbox",
        description=(
            "Keep aspect ratio (pad), stretch, or center-crop (shortest side to the input size, then the "
            "centre: Ultralytics classification)."
        ),
    )
    pad_value: int = Field(default=114, ge=0, le=255, description="Letterbox padding grey level.")

    @field_validator("std")
    @classmethod
    def _no_zero_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v == 0 for v in value):
            raise ValueError(f"std {list(value)} contains 0 (division by zero)")
        return value


class InputOverride(_Strict):
    """Per-artifact changes to ``input`` (e.g. an RKNN build that takes NHWC uint8)."""

    layout: Literal["NCHW", "NHWC"] | None = None
    color: Literal["RGB", "BGR"] | None = None
    dtype: Literal["float32", "float16", "uint8"] | None = None
    pad_value: int | None = Field(default=None, ge=0, le=255)


class HeadSpec(_Strict):
    """How the raw outputs are decoded into boxes."""

    type: Literal[
        "yolov8",
        "yolov8_dfl",
        "yolov5",
        "end2end",
        "yolov5_single",
        "yolov8_seg",
        "yolov8_seg_dfl",
        "yolov8_pose",
        "yolov8_pose_dfl",
        "yolov8_obb",
        "yolov8_cls",
        "rfdetr",
        "rfdetr_seg",
    ] = Field(
        default=...,
        description=(
            "yolov8: one [1, 4+nc, N] output (Ultralytics YOLOv5u/8/11/26, cx cy w h in input pixels); "
            "yolov8_dfl: nine outputs, per stride box DFL [1, 4*reg_max, H, W] (reg_max 1: raw distances, "
            "YOLO26), class scores [1, nc, H, W], score sum [1, 1, H, W] (rknn_model_zoo); "
            "yolov5: three anchor heads [1, 3*(5+nc), H, W]; "
            "end2end: one [1, K, 6] output x1 y1 x2 y2 score class, already filtered (YOLOv10, YOLO26, "
            "Ultralytics nms=True exports; no NMS is run); "
            "yolov5_single: one [1, N, 5+nc] output cx cy w h objectness class scores (classic YOLOv5 "
            "export, Roboflow YOLOv5), score = objectness * class. "
            "Other tasks (docs/models.md): yolov8_seg: [1, 4+nc+nm, N] + prototypes [1, nm, H/4, W/4]; "
            "yolov8_seg_dfl: per stride box DFL, class scores, score sum, mask coefficients [1, nm, H, W], "
            "prototypes last (rknn_model_zoo yolov8_seg); yolov8_pose: [1, 4+nc+K*dims, N]; "
            "yolov8_pose_dfl: per stride [1, 64+nc, H, W] (box DFL ++ class logits) then keypoints "
            "[1, K, dims, N] (rknn_model_zoo yolov8_pose); yolov8_obb: [1, 4+nc+1, N], angle (radians) last; "
            "yolov8_cls: [1, nc]; rfdetr: boxes [1, Q, 4] normalised cx cy w h + logits [1, Q, nc(+1)]; "
            "rfdetr_seg: the same plus masks [1, Q, h, w]."
        ),
    )
    activation: Literal["none", "softmax", "sigmoid"] = Field(
        default="none",
        description=(
            "Classification (yolov8_cls) only: what Coral applies to the scores. Ultralytics cls exports "
            "already end in a softmax (none); raw logits take softmax (single-label) or sigmoid (multi-label)."
        ),
    )
    keypoint_dims: Literal[2, 3] = Field(
        default=3,
        description="Values per keypoint in pose outputs: x, y (2) or x, y, confidence (3).",
    )
    box_units: Literal["pixels", "normalized"] = Field(
        default="pixels",
        description=(
            "Units of decoded box coordinates: input pixels, or 0-1 fractions of the input size "
            "(Ultralytics int8 RKNN builds)."
        ),
    )
    strides: list[int] = Field(
        default_factory=lambda: [8, 16, 32], description="Strides of the output grids."
    )
    reg_max: int = Field(default=16, ge=1, description="DFL bins per box side (yolov8_dfl).")
    anchors: list[list[float]] | None = Field(
        default=None,
        description="Anchor (w, h) pairs in pixels per stride (yolov5); default COCO anchors.",
    )
    sigmoid_in_model: bool = Field(
        default=True,
        description="Scores (and yolov5 box terms) already went through a sigmoid inside the model.",
    )

    @model_validator(mode="after")
    def _anchors_match_strides(self) -> HeadSpec:
        if self.type == "yolov5":
            anchors = self.anchors or YOLOV5_DEFAULT_ANCHORS
            if len(anchors) != len(self.strides):
                raise ValueError(
                    f"anchors has {len(anchors)} rows but strides has {len(self.strides)} entries"
                )
            widths = {len(row) for row in anchors}
            if len(widths) != 1 or widths.pop() % 2:
                raise ValueError(
                    "every anchors row must hold the same even number of values (w, h pairs)"
                )
        return self

    @property
    def anchor_pairs(self) -> list[list[float]]:
        return self.anchors or YOLOV5_DEFAULT_ANCHORS

    @property
    def needs_nms(self) -> bool:
        """False for heads whose output is already the final, filtered set of boxes."""
        return self.type != "end2end"


def _sha256_hex(value: str | None) -> str | None:
    if value is not None:
        value = value.lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError(
                f"{value!r} is not a sha256 hex digest (64 hex characters); compute it with: sha256sum FILE"
            )
    return value


class CompanionFile(_Strict):
    """A file an artifact needs beside it (the weights of a two-file format, ONNX external data)."""

    file: str = Field(default=..., description="Path relative to the package directory.")
    sha256: str | None = Field(default=None, description="Hex digest, checked whenever present.")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        return _sha256_hex(value)


# Heads of the tasks other than object detection; every other head type decodes boxes.
TASK_HEADS: dict[str, tuple[str, ...]] = {
    "instance-segmentation": ("yolov8_seg", "yolov8_seg_dfl", "rfdetr_seg"),
    "keypoint-detection": ("yolov8_pose", "yolov8_pose_dfl"),
    "classification": ("yolov8_cls",),
    "obb": ("yolov8_obb",),
}


def head_task(head_type: str) -> str:
    """The task a head type decodes (``object-detection`` for every box-only head)."""
    for task, types in TASK_HEADS.items():
        if head_type in types:
            return task
    return "object-detection"


class KeypointsSpec(_Strict):
    """Keypoint names (model order) and the skeleton's edges as index pairs."""

    names: list[str] = Field(
        default=..., min_length=1, description="One name per keypoint, in the model's order."
    )
    skeleton: list[tuple[int, int]] = Field(
        default_factory=list, description="Edges between keypoints, 0-based indices into names."
    )

    @model_validator(mode="after")
    def _edges_in_range(self) -> KeypointsSpec:
        bad = [
            list(edge) for edge in self.skeleton if not all(0 <= i < len(self.names) for i in edge)
        ]
        if bad:
            raise ValueError(
                f"skeleton edges {bad} index past the {len(self.names)} keypoint names (0-based)"
            )
        return self


class ArtifactSpec(_Strict):
    """One runtime's model file: a path inside the package or a URL, with its sha256."""

    file: str | None = Field(default=None, description="Path relative to the package directory.")
    url: str | None = Field(
        default=None, description="http(s):// or file:// URL, fetched into the artifact cache."
    )
    sha256: str | None = Field(
        default=None, description="Hex digest; required with url, checked whenever present."
    )
    target_platform: str | None = Field(
        default=None, description="SoC an RKNN artifact was built for, e.g. rk3588."
    )
    input: InputOverride | None = Field(
        default=None, description="Input changes for this artifact only."
    )
    head: HeadSpec | None = Field(
        default=None,
        description="Head of this artifact when it differs (e.g. an RKNN build of the nine-output export).",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Backend-specific settings.")
    format: str | None = Field(
        default=None,
        description=(
            "File format, so every backend that reads it can use it (onnx, rknn, or a runtime's own "
            "format name); default: the file's suffix."
        ),
    )
    companions: list[CompanionFile] = Field(
        default_factory=list,
        description="Files inside the package the artifact needs beside it (e.g. a weights file).",
    )

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        return _sha256_hex(value)

    @model_validator(mode="after")
    def _one_source(self) -> ArtifactSpec:
        if (self.file is None) == (self.url is None):
            raise ValueError("give exactly one of 'file' (inside the package) or 'url'")
        if self.url is not None and self.sha256 is None:
            raise ValueError(f"an artifact fetched from {self.url} needs a sha256 to be verified")
        if self.url is not None and self.companions:
            raise ValueError(
                "companions are supported for in-package artifacts ('file') only, not with 'url'"
            )
        return self

    @property
    def kind(self) -> str:
        """The file format: ``format``, else the file's suffix, lower case (``onnx``, ``rknn``)."""
        return (self.format or Path(self.filename).suffix.lstrip(".")).lower()

    @property
    def filename(self) -> str:
        return (
            Path(self.file).name
            if self.file
            # ArtifactSpec's validator: without a file there is a url
            else Path(cast(str, self.url).split("?", 1)[0]).name or "artifact"
        )


class RknnConversion(_Strict):
    """How ``coral-runtime models convert`` builds this package's ``.rknn``."""

    onnx: str = Field(
        default=...,
        description="ONNX file inside the package to convert (the nine-output export for YOLOv8).",
    )
    head: HeadSpec | None = Field(
        default=None, description="Head of that ONNX file when it differs from 'head'."
    )
    target_platform: str = Field(default="rk3588", description="SoC to build for.")
    quantize: bool = Field(
        default=False, description="int8 quantisation (needs a calibration image list)."
    )


class ConvertSpec(_Strict):
    rknn: RknnConversion | None = None


class ModelManifest(_Strict):
    """The content of ``coral-model.yaml``."""

    name: str = Field(
        default=..., min_length=1, description="Package name (how blocks and the CLI refer to it)."
    )
    task: Literal[
        "object-detection", "instance-segmentation", "keypoint-detection", "classification", "obb"
    ] = Field(default="object-detection", description="What the model does.")
    multi_label: bool = Field(
        default=False,
        description="classification: independent (sigmoid) labels instead of one class per image.",
    )
    keypoints: KeypointsSpec | None = Field(
        default=None,
        description="keypoint-detection: keypoint names (in model order) and skeleton edges.",
    )
    description: str = Field(default="", description="One line for humans.")
    classes: list[str] = Field(default=..., min_length=1, description="Class names by class id.")
    input: InputSpec
    head: HeadSpec
    artifacts: dict[str, ArtifactSpec] = Field(
        default=..., min_length=1, description="Artifacts by backend name."
    )
    convert: ConvertSpec = Field(
        default_factory=ConvertSpec, description="Sources for artifacts built on demand."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Provenance: training script, seed, accuracy."
    )

    @model_validator(mode="after")
    def _head_fits_task(self) -> ModelManifest:
        heads = [("head", self.head)] + [
            (f"artifacts.{name}.head", spec.head)
            for name, spec in self.artifacts.items()
            if spec.head is not None
        ]
        for field, head in heads:
            task = head_task(head.type)
            if task != self.task:
                fitting = ", ".join(TASK_HEADS.get(self.task, ("yolov8", "yolov8_dfl", "...")))
                raise ValueError(
                    f"{field}.type {head.type!r} decodes {task} outputs but task is {self.task!r}; "
                    f"heads for {self.task}: {fitting}"
                )
        if self.task == "keypoint-detection" and self.keypoints is None:
            raise ValueError(
                "task keypoint-detection needs 'keypoints: {names: [...], skeleton: [[i, j], ...]}'"
            )
        if self.multi_label and self.task != "classification":
            raise ValueError(f"multi_label applies to task classification only, not {self.task!r}")
        return self

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, value: list[str]) -> list[str]:
        duplicates = sorted({c for c in value if value.count(c) > 1})
        if duplicates:
            raise ValueError(f"class names must be unique; repeated: {duplicates}")
        return value


@dataclass(frozen=True)
class ModelPackage:
    """A validated package on disk."""

    root: Path
    manifest_path: Path
    manifest: ModelManifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def input(self) -> InputSpec:
        return self.manifest.input

    @property
    def head(self) -> HeadSpec:
        return self.manifest.head

    @property
    def backends(self) -> list[str]:
        return list(self.manifest.artifacts)

    def artifact(self, backend: str) -> ArtifactSpec:
        try:
            return self.manifest.artifacts[backend]
        except KeyError:
            raise ArtifactNotFoundError(
                f"model package {self.name!r} ({self.manifest_path}) has no artifact for backend {backend!r}; "
                f"it has: {', '.join(self.manifest.artifacts)}. Add artifacts.{backend} to the manifest "
                f"or choose another backend"
            ) from None

    def artifacts_of_format(self, kind: str) -> list[str]:
        """Keys of the artifacts in format ``kind`` (e.g. every ONNX file a backend could compile)."""
        return [key for key, spec in self.manifest.artifacts.items() if spec.kind == kind.lower()]

    def local_artifact_path(self, backend: str) -> Path | None:
        """The in-package file of an artifact (None when it comes from a URL)."""
        spec = self.artifact(backend)
        return (self.root / spec.file).resolve() if spec.file else None

    def head_for(self, backend: str) -> HeadSpec:
        artifact = self.manifest.artifacts.get(backend)
        return (
            artifact.head
            if artifact is not None and artifact.head is not None
            else self.manifest.head
        )

    def input_for(self, backend: str, defaults: InputOverride | None = None) -> InputSpec:
        """The input spec a backend feeds: manifest input < backend defaults < artifact override."""
        spec = self.manifest.input
        artifact = self.manifest.artifacts.get(backend)
        changes: dict[str, Any] = {}
        for override in (defaults, artifact.input if artifact else None):
            if override is not None:
                changes.update(override.model_dump(exclude_none=True))
        return spec.model_copy(update=changes) if changes else spec


def find_manifest(directory: Path) -> Path | None:
    for name in MANIFEST_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def bundled_packages() -> dict[str, Path]:
    """Packages shipped inside Coral (``coral_inference/models/zoo/<name>/``), by directory name."""
    if not ZOO_DIR.is_dir():
        return {}
    return {
        p.name: p for p in sorted(ZOO_DIR.iterdir()) if p.is_dir() and find_manifest(p) is not None
    }


def resolve_package_path(name_or_path: str | Path) -> Path:
    """A package directory from a path (directory or manifest file) or a bundled package name."""
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.name in MANIFEST_NAMES:
        return path.parent
    if path.is_file() and path.suffix.lower() == ".onnx":
        # Building a package for a bare export is the importer's job, one layer up: a model
        # reference (models.loaded.resolve_reference) does it, a package path does not.
        raise PackageNotFoundError(
            f"{path}: an ONNX file, not a model package; use it as a model name (a workflow "
            f"step's model, a config models entry), which builds its package in Coral's cache, "
            f"or import it once: coral-runtime models import {path}"
        )
    if path.is_dir():
        if find_manifest(path) is None:
            raise PackageNotFoundError(
                f"{path}: directory has no {MANIFEST_NAME}; a model package is a directory with a "
                f"{MANIFEST_NAME} manifest (see docs/models.md)"
            )
        return path
    bundled = bundled_packages()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    raise PackageNotFoundError(
        f"model package {str(name_or_path)!r} not found: no such directory (relative to {Path.cwd()}) "
        f"and no bundled package of that name (bundled: {', '.join(bundled) or 'none'}); "
        f"give a package directory, a bundled name or a name from the config's models section"
    )


def load_package(name_or_path: str | Path) -> ModelPackage:
    """Read and validate a model package; every problem names the manifest file and field.

    >>> load_package("coral-demo").classes  # doctest: +SKIP
    ['circle', 'square', 'triangle']
    """
    root = resolve_package_path(name_or_path).resolve()
    manifest_path = find_manifest(root)
    assert manifest_path is not None  # resolve_package_path checked it
    try:
        data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestError(manifest_path, [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ManifestError(
            manifest_path, [f"the top level must be a mapping, got {type(data).__name__}"]
        )
    try:
        manifest = ModelManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(manifest_path, _explain(exc)) from None
    problems = []
    inside = [
        (f"artifacts.{backend}.file", spec.file)
        for backend, spec in manifest.artifacts.items()
        if spec.file
    ]
    inside += [
        (f"artifacts.{backend}.companions.{i}.file", companion.file)
        for backend, spec in manifest.artifacts.items()
        for i, companion in enumerate(spec.companions)
    ]
    if manifest.convert.rknn is not None:
        inside.append(("convert.rknn.onnx", manifest.convert.rknn.onnx))
    for field, relative in inside:
        if root not in (root / relative).resolve().parents:
            problems.append(f"{field}: {relative!r} points outside the package directory")
    if problems:
        raise ManifestError(manifest_path, problems)
    return ModelPackage(root=root, manifest_path=manifest_path, manifest=manifest)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _explain(exc: ValidationError) -> list[str]:
    return validation_problems(exc.errors(), unknown_hint="see docs/models.md")
