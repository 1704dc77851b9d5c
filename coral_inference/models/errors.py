"""Errors of model packages, artifacts and decoders; each message names the file, field or value and the fix.

``ModelPackageError`` is the one base of the package-description layer (below the
backends, which raise ``ModelLoadError`` for an artifact they cannot load).
"""

from __future__ import annotations


class ModelPackageError(ValueError):
    """A model package cannot be used as it is."""


class PackageNotFoundError(ModelPackageError, FileNotFoundError):
    """No package directory, manifest, bundled package or configured model of that name."""


class ManifestError(ModelPackageError):
    """``coral-model.yaml`` is unreadable or a field is wrong; ``problems`` lists each one."""

    def __init__(self, path: object, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class ArtifactNotFoundError(ModelPackageError):
    """The package has no artifact for a backend, or the artifact file is missing."""


class ChecksumMismatchError(ModelPackageError):
    """An artifact's sha256 differs from the one in the manifest."""


class ArtifactDownloadError(ModelPackageError):
    """An artifact URL could not be fetched."""


class ModelLoadError(ModelPackageError, RuntimeError):
    """A backend could not load an artifact (corrupt file, wrong format, unsupported operator)."""


class OutputMismatchError(ModelPackageError, RuntimeError):
    """The model's output tensors do not match the head the manifest declares."""


class ModelTaskMismatchError(ModelPackageError):
    """A package of one task was asked for another (a classifier in a segmentation block)."""
