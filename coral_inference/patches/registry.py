"""The patches a runtime context knows: discovered, switched by config, recorded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coral_inference.patches.base import Patch, PatchOutcome
from coral_inference.plugins import PATCHES_GROUP, PluginRecord, discover

if TYPE_CHECKING:  # patches sit below the runtime: the context is an annotation here
    from coral_inference.runtime.context import RuntimeContext


class PatchSet:
    def __init__(self) -> None:
        self._patches: dict[str, Patch] = {}
        self._origins: dict[str, str] = {}
        self.outcomes: dict[str, PatchOutcome] = {}

    def add(self, patch: Patch, *, origin: str = "registered in code") -> None:
        if not isinstance(patch, Patch):
            raise TypeError(f"{patch!r} is not a coral_inference.patches.Patch")
        self._patches[patch.name] = patch
        self._origins[patch.name] = origin

    def discover(self, *, skip: tuple[str, ...] = ()) -> list[PluginRecord]:
        records = discover(PATCHES_GROUP, skip=skip)
        for record in records:
            origin = f"entry point {record.target} ({record.distribution} {record.version})"
            if not record.loaded:
                self.outcomes[record.name] = PatchOutcome(
                    record.name, "failed", f"plugin failed to load: {record.error}"
                )
                self._origins[record.name] = origin
                continue
            obj = record.obj() if isinstance(record.obj, type) else record.obj
            try:
                self.add(obj, origin=origin)
            except TypeError as exc:
                self.outcomes[record.name] = PatchOutcome(record.name, "failed", str(exc))
                self._origins[record.name] = origin
        return records

    def apply(self, switches: Mapping[str, bool], context: RuntimeContext) -> None:
        """Enable or leave off each patch as config says; record the outcome and reason."""
        for name in switches:
            if name not in self._patches and name not in self.outcomes:
                self.outcomes[name] = PatchOutcome(
                    name,
                    "refused",
                    f"patches.{name} is set in config but no such patch is installed",
                )
        for name, patch in self._patches.items():
            wanted = switches.get(name, patch.default_enabled)
            if not wanted:
                why = (
                    f"disabled in config (patches.{name}: false)"
                    if name in switches
                    else "off by default"
                )
                self.outcomes[name] = PatchOutcome(name, "off", why)
                continue
            self.outcomes[name] = patch.enable(context)

    def disable_all(self, context: RuntimeContext) -> None:
        for name, patch in reversed(list(self._patches.items())):
            if patch.is_enabled:
                self.outcomes[name] = patch.disable(context)

    def get(self, name: str) -> Patch | None:
        return self._patches.get(name)

    def is_enabled(self, name: str) -> bool:
        patch = self._patches.get(name)
        return bool(patch and patch.is_enabled)

    def describe(self) -> list[dict[str, Any]]:
        rows = []
        for name in sorted(set(self._patches) | set(self.outcomes)):
            patch = self._patches.get(name)
            outcome = self.outcomes.get(name)
            rows.append(
                {
                    "name": name,
                    "description": patch.description if patch else "",
                    "supported": patch.supported if patch else None,
                    "origin": self._origins.get(name, "config"),
                    "state": outcome.state if outcome else "off",
                    "reason": outcome.reason if outcome else "not applied",
                }
            )
        return rows
