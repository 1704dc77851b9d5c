"""Patch objects: a named, version-gated, reversible replacement of inference attributes.

A patch exists only where inference offers no public extension point. Before it
touches anything it checks the installed inference version against ``supported``
and that every target exists; ``disable`` puts back the exact original objects
(including ``staticmethod``/``classmethod`` wrappers, and removes attributes that
were only inherited). Enabling twice, or disabling twice, is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet

from coral_inference import compat

if TYPE_CHECKING:  # patches sit below the runtime: the context is an annotation here
    from coral_inference.runtime.context import RuntimeContext

# A replacement factory gets the current (original) attribute and the runtime context
# and returns the object to install.
ReplacementFactory = Callable[[Any, "RuntimeContext | None"], Any]
_MISSING = object()


@dataclass(frozen=True)
class PatchOutcome:
    name: str
    state: str  # enabled | off | refused | failed
    reason: str

    @property
    def enabled(self) -> bool:
        return self.state == "enabled"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "state": self.state, "reason": self.reason}


class Patch:
    """Subclass and set the class attributes, or instantiate with arguments."""

    name: str = ""
    description: str = ""
    supported: str = ">=1.3,<2"
    default_enabled: bool = False
    replacements: dict[str, ReplacementFactory] = {}

    def __init__(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        supported: str | None = None,
        replacements: dict[str, ReplacementFactory] | None = None,
        default_enabled: bool | None = None,
    ):
        self.name = name or self.name
        self.description = description if description is not None else self.description
        self.supported = supported or self.supported
        self.replacements = dict(replacements if replacements is not None else self.replacements)
        if default_enabled is not None:
            self.default_enabled = default_enabled
        if not self.name:
            raise ValueError(f"{type(self).__name__} needs a name")
        self._saved: list[tuple[Any, str, Any]] = []
        self._enabled = False

    @property
    def specifier(self) -> SpecifierSet:
        return SpecifierSet(self.supported)

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def check(self) -> PatchOutcome | None:
        """Why this patch cannot be applied here, or None when it can."""
        info = compat.inference_info()
        if info is None:
            return PatchOutcome(self.name, "refused", "inference is not installed")
        if info.version not in self.specifier:
            return PatchOutcome(
                self.name,
                "refused",
                f"inference {info.version} is outside the patch's supported range {self.supported}",
            )
        for target in self.replacements:
            try:
                compat.resolve_attribute(target)
            except LookupError as exc:
                return PatchOutcome(self.name, "refused", f"target missing: {exc}")
        return None

    def enable(self, context: RuntimeContext | None = None) -> PatchOutcome:
        if self._enabled:
            return PatchOutcome(self.name, "enabled", "already enabled")
        refusal = self.check()
        if refusal is not None:
            return refusal
        try:
            for target, factory in self.replacements.items():
                owner, attr, current = compat.resolve_attribute(target)
                raw = vars(owner).get(attr, _MISSING) if hasattr(owner, "__dict__") else current
                replacement = factory(current, context)
                self._saved.append((owner, attr, raw))
                setattr(owner, attr, replacement)
        except Exception as exc:
            self._restore()
            return PatchOutcome(self.name, "failed", f"{type(exc).__name__}: {exc}")
        self._enabled = True
        return PatchOutcome(self.name, "enabled", f"replaced {', '.join(self.replacements)}")

    def disable(self, context: RuntimeContext | None = None) -> PatchOutcome:
        if not self._enabled:
            return PatchOutcome(self.name, "off", "not enabled")
        self._restore()
        self._enabled = False
        return PatchOutcome(self.name, "off", "disabled; originals restored")

    def _restore(self) -> None:
        while self._saved:
            owner, attr, raw = self._saved.pop()
            if raw is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, raw)
