"""Model packages, pre/post-processing, decoders, NMS and the ``Detector``.

``load_package`` reads a package directory; ``Detector(package, session)`` turns
frames into ``supervision.Detections``. Nothing here imports Roboflow
``inference``; ``Detector`` and ``load_model`` are imported on first use because
``supervision`` takes seconds to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coral_inference.models.errors import (
    ArtifactDownloadError,
    ArtifactNotFoundError,
    ChecksumMismatchError,
    ManifestError,
    ModelLoadError,
    ModelPackageError,
    OutputMismatchError,
    PackageNotFoundError,
)
from coral_inference.models.package import (
    ModelManifest,
    ModelPackage,
    bundled_packages,
    load_package,
)

if TYPE_CHECKING:  # imported lazily by __getattr__ at run time
    from coral_inference.models.detector import Detector
    from coral_inference.models.loaded import LoadedModel, load_model

__all__ = [
    "ArtifactDownloadError",
    "ArtifactNotFoundError",
    "ChecksumMismatchError",
    "Detector",
    "LoadedModel",
    "ManifestError",
    "ModelLoadError",
    "ModelManifest",
    "ModelPackage",
    "ModelPackageError",
    "OutputMismatchError",
    "PackageNotFoundError",
    "bundled_packages",
    "load_model",
    "load_package",
]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        # heavy: Detector imports supervision (~3 s with its scipy, PIL)
        from coral_inference.models.detector import Detector

        return Detector
    if name in {"LoadedModel", "load_model"}:
        # heavy: models.loaded imports supervision (~3 s with its scipy, PIL)
        from coral_inference.models import loaded

        return getattr(loaded, name)
    raise AttributeError(f"module 'coral_inference.models' has no attribute {name!r}")
