"""A model package loaded on a backend for a runtime context (``RuntimeContext.get_model``).

Names resolve in this order: a name from the config's ``models`` section, a
package directory (or its manifest file), a bare Ultralytics ``.onnx`` export
(its package is built once in Coral's cache by the importer), a bundled package
from ``coral_inference/models/zoo``. The backend is the explicit argument, else the
config entry's, else ``auto``: the first backend in ``backends.order`` that is
available here *and* has an artifact in the package.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from coral_inference.backends.base import BackendAdapter, BackendUnavailableError
from coral_inference.models.catalog import ModelCatalog
from coral_inference.models.detector import Detector
from coral_inference.models.errors import ArtifactNotFoundError
from coral_inference.models.export_metadata import check_session_metadata
from coral_inference.models.importing import ensure_onnx_package
from coral_inference.models.package import ModelPackage, load_package
from coral_inference.models.tasks.results import ClassificationResult

logger = logging.getLogger("coral_inference.models")

CORAL_MODEL_ID_PREFIX = "coral/"


class LoadedModel:
    """A ready detector: ``detect``/``detect_batch``, the package and the backend it runs on."""

    def __init__(
        self, package: ModelPackage, backend_name: str, detector: Detector, reference: str
    ):
        self.package = package
        self.backend_name = backend_name
        self.detector = detector
        self.reference = reference

    @property
    def session(self) -> Any:
        return self.detector.session

    def detect(self, frame_bgr: np.ndarray, **options: Any) -> sv.Detections:
        return self.detector.detect(frame_bgr, **options)

    def detect_batch(self, frames: Sequence[np.ndarray], **options: Any) -> list[sv.Detections]:
        return self.detector.detect_batch(frames, **options)

    @property
    def task(self) -> str:
        """The package's task: object-detection, instance-segmentation, keypoint-detection, classification, obb."""
        return self.package.manifest.task

    def classify(self, frame_bgr: np.ndarray) -> ClassificationResult:
        """Class probabilities (task classification); other tasks raise ``OutputMismatchError``."""
        return self.detector.classify(frame_bgr)

    def classify_batch(self, frames: Sequence[np.ndarray]) -> list[ClassificationResult]:
        return self.detector.classify_batch(frames)

    def close(self) -> None:
        self.detector.close()

    def describe(self) -> dict[str, Any]:
        session = self.session
        return {
            "name": self.package.name,
            "reference": self.reference,
            "package": str(self.package.root),
            "backend": self.backend_name,
            "classes": self.package.classes,
            "head": self.package.head.type,
            "task": self.task,
            "session": session.describe() if hasattr(session, "describe") else {},
        }


def strip_model_id(reference: str) -> str:
    """``coral/<name>`` (the model-id form core Roboflow blocks use) -> ``<name>``."""
    return reference.removeprefix(CORAL_MODEL_ID_PREFIX)


def resolve_reference(
    catalog: ModelCatalog | None, reference: str | Path
) -> tuple[ModelPackage, str]:
    """(package, backend wanted by config) for a config name, a path or a bundled name."""
    name = strip_model_id(str(reference))
    entry = catalog.entries.get(name) if catalog is not None else None
    if entry is not None:
        return _package_at(entry.package), entry.backend
    return _package_at(name), "auto"


def _package_at(reference: str | Path) -> ModelPackage:
    """``load_package``, except that a bare ``.onnx`` export gets its package built first."""
    path = Path(reference).expanduser()
    if path.suffix.lower() == ".onnx" and path.is_file():
        # A bare Ultralytics export: the importer builds its package in Coral's cache (logged).
        return load_package(ensure_onnx_package(path))
    return load_package(reference)


def choose_backend(catalog: ModelCatalog, package: ModelPackage, requested: str) -> BackendAdapter:
    """The adapter to run ``package`` on: the named one (checked) or the first fitting one for ``auto``."""
    registry = catalog.backends
    if requested != "auto":
        adapter = registry.get(requested)  # UnknownBackendError names the registered ones
        probe = registry.entry(requested).probe or adapter.probe()
        if not probe.available:
            raise BackendUnavailableError(
                f"backend {requested!r} cannot run model {package.name!r} here: {probe.reason}"
            )
        # The adapter says which artifacts it loads (its own, or any in a format it reads);
        # ArtifactNotFoundError names the artifacts the package has.
        _artifacts_for(adapter, requested, package)
        return adapter
    order = list(catalog.order)
    names = registry.names()
    available = set(registry.available())
    reasons = []
    for name in order + [n for n in names if n not in order]:
        if name not in names:
            continue
        if name not in available:
            reasons.append(
                f"{name}: {registry.entry(name).as_dict().get('reason') or 'unavailable'}"
            )
        elif not _loads_artifact(registry.get(name), name, package):
            reasons.append(
                f"{name}: package has no artifacts.{name} (nor one in a format it reads)"
            )
        else:
            return registry.get(name)
    raise BackendUnavailableError(
        f"no backend can run model {package.name!r} ({package.manifest_path}) with backend 'auto': "
        + "; ".join(reasons or ["no backends registered"])
    )


def _artifacts_for(adapter: Any, name: str, package: ModelPackage) -> list[Any]:
    """The artifacts ``adapter`` would load: its ``list_artifacts``, else ``artifacts.<name>``."""
    lister = getattr(adapter, "list_artifacts", None)
    if callable(lister):
        artifacts: Any = lister(package)
        return list(artifacts)
    return [package.artifact(name)]


def _loads_artifact(adapter: Any, name: str, package: ModelPackage) -> bool:
    try:
        return bool(_artifacts_for(adapter, name, package))
    except ArtifactNotFoundError:
        return False


def load_model(
    catalog: ModelCatalog, name_or_path: str | Path, backend: str | None = None
) -> LoadedModel:
    """Load (not cached here: ``RuntimeContext.get_model`` caches) a package on a backend."""
    package, configured = resolve_reference(catalog, name_or_path)
    adapter = choose_backend(catalog, package, backend or configured)
    session = adapter.prepare_session(package)
    try:  # an export whose own metadata contradicts the manifest is refused, never decoded as garbage
        check_session_metadata(package, adapter.name, session)
    except Exception:
        session.close()
        raise
    detector = Detector(package, session)
    logger.info("model %r loaded on %s (%s)", package.name, adapter.name, package.root)
    return LoadedModel(package, adapter.name, detector, str(name_or_path))
