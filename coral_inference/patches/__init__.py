"""Reversible, version-gated patches into inference (only where no public extension point exists)."""

from coral_inference.patches.base import Patch, PatchOutcome
from coral_inference.patches.registry import PatchSet

__all__ = ["Patch", "PatchOutcome", "PatchSet"]
