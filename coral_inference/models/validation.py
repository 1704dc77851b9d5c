"""Checks of a model package beyond its manifest: artifacts, checksums, and a real run per backend.

``check_package`` loads every artifact on every backend that is available here,
compares the model's input with the manifest and decodes one blank frame with
the declared head, so a wrong layout, size, class count or head type is found
before a pipeline starts. Each check says ok / warn / fail / skip and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from coral_inference.backends.base import BackendAdapter
from coral_inference.models.artifacts import ensure_artifact
from coral_inference.models.errors import ModelPackageError, OutputMismatchError
from coral_inference.models.export_metadata import metadata_problems, session_metadata
from coral_inference.models.package import InputSpec, ModelPackage


class BackendLookup(Protocol):
    def get(self, name: str) -> BackendAdapter: ...


class BackendHost(Protocol):
    """What the run checks need: registered backends by name (``RuntimeContext`` is one)."""

    @property
    def backends(self) -> BackendLookup: ...


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


def expected_input_shape(spec: InputSpec) -> list[int]:
    return (
        [1, 3, spec.height, spec.width]
        if spec.layout == "NCHW"
        else [1, spec.height, spec.width, 3]
    )


def check_package(
    package: ModelPackage, context: BackendHost | None = None, *, fetch: bool = False
) -> list[Check]:
    checks = [
        Check(
            "manifest",
            "ok",
            f"{package.manifest_path}: {len(package.classes)} classes, head {package.head.type}",
        )
    ]
    source = package.manifest.metadata.get("source")
    if (
        isinstance(source, dict)
        and source.get("kind") == "roboflow"
        and "resize" not in package.input.model_fields_set
    ):
        checks.append(
            Check(
                "input.resize",
                "warn",
                "a Roboflow-trained model with no input.resize: Coral's default is letterbox but Roboflow trains with "
                "'Stretch to' unless the dataset says otherwise; set input.resize (stretch or letterbox) as in the "
                "model's environment.json PREPROCESSING, or re-import it with coral-runtime models import",
            )
        )
    for backend, spec in package.manifest.artifacts.items():
        name = f"artifacts.{backend}"
        if spec.url is not None and not fetch:
            checks.append(
                Check(
                    name, "skip", f"{spec.url} not fetched (use --fetch to download and verify it)"
                )
            )
            continue
        try:
            path = ensure_artifact(package, backend, progress=False)
        except ModelPackageError as exc:
            checks.append(Check(name, "fail", str(exc)))
            continue
        if spec.sha256 is None:
            checks.append(
                Check(
                    name,
                    "warn",
                    f"{path}: no sha256 in the manifest; add one: sha256sum {path.name}",
                )
            )
        else:
            checks.append(
                Check(name, "ok", f"{path} ({path.stat().st_size} bytes, sha256 verified)")
            )
        if context is not None:
            checks.append(_run_check(package, backend, context))
    conversion = package.manifest.convert.rknn
    if conversion is not None:
        source = package.root / conversion.onnx
        status = "ok" if source.is_file() else "fail"
        checks.append(
            Check(
                "convert.rknn.onnx",
                status,
                f"{source}{'' if source.is_file() else ' does not exist'}",
            )
        )
    return checks


def _run_check(package: ModelPackage, backend: str, context: BackendHost) -> Check:
    name = f"run on {backend}"
    try:
        adapter = context.backends.get(backend)
    except KeyError as exc:
        return Check(name, "skip", str(exc))
    probe = adapter.probe()
    if not probe.available:
        return Check(name, "skip", f"backend unavailable here: {probe.reason}")
    # heavy: models.detector imports supervision (~3 s with its scipy, PIL)
    from coral_inference.models.detector import Detector

    try:
        session = adapter.prepare_session(package)
    except Exception as exc:
        return Check(name, "fail", f"{type(exc).__name__}: {exc}")
    try:
        problems = metadata_problems(package, session_metadata(session), backend)
        if problems:
            return Check(
                name,
                "fail",
                "the export's own metadata contradicts the manifest: " + "; ".join(problems),
            )
        try:
            detector = Detector(package, session)
        except OutputMismatchError as exc:
            return Check(name, "fail", str(exc))
        spec = detector.input_spec
        declared = getattr(session, "input_shape", None)
        expected = expected_input_shape(spec)
        if declared is not None and any(
            isinstance(d, int) and d != e for d, e in zip(declared, expected)
        ):
            return Check(
                name,
                "fail",
                f"the model's input is {declared} but the manifest describes {expected} "
                f"({spec.layout} {spec.width}x{spec.height}); fix 'input' in the manifest",
            )
        frame = np.full((spec.height, spec.width, 3), 114, np.uint8)
        try:
            if detector.head.type == "yolov8_cls":
                detector.classify(frame)
            else:
                detector.detect(frame, confidence=0.99)
        except OutputMismatchError as exc:
            return Check(name, "fail", str(exc))
        except (
            Exception
        ) as exc:  # e.g. the runtime rejects the tensor: report, do not crash the CLI
            return Check(name, "fail", f"running one frame failed: {type(exc).__name__}: {exc}")
        return Check(name, "ok", f"loaded and decoded one frame ({_describe(session)})")
    finally:
        session.close()


def _describe(session: Any) -> str:
    info = session.describe() if hasattr(session, "describe") else {}
    if "providers" in info:
        return "providers " + ", ".join(info["providers"])
    if "core_masks" in info:
        return "NPU core masks " + ", ".join(str(m) for m in info["core_masks"])
    return type(session).__name__
