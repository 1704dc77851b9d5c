"""Errors of ``coral-runtime models import``; each names the flag or file that fixes it."""

from __future__ import annotations

from coral_inference.models.errors import ModelPackageError


class ModelImportError(ModelPackageError):
    """A model source cannot be turned into a package without more information."""


class UnknownLayoutError(ModelImportError):
    """The model's outputs fit no head Coral knows."""


class MissingClassesError(ModelImportError):
    """The source carries no class names and none were given."""
