"""Entry-point discovery shared by backends, patches and web plugins.

A plugin that fails to import is reported (``PluginRecord.error``), never fatal.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

BACKENDS_GROUP = "coral_inference.backends"
PATCHES_GROUP = "coral_inference.patches"
WEB_PLUGINS_GROUP = "coral_inference.web_plugins"
GROUPS = (BACKENDS_GROUP, PATCHES_GROUP, WEB_PLUGINS_GROUP)


@dataclass
class PluginRecord:
    group: str
    name: str
    target: str
    distribution: str | None
    version: str | None
    obj: Any = field(default=None, repr=False)
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "target": self.target,
            "distribution": self.distribution,
            "version": self.version,
            "loaded": self.loaded,
            "error": self.error,
        }


def discover(group: str, *, skip: Iterable[str] = ()) -> list[PluginRecord]:
    """Load every entry point of ``group``; import errors are captured per plugin."""
    skipped = set(skip)
    records = []
    for entry_point in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
        if entry_point.name in skipped:
            continue
        dist = getattr(entry_point, "dist", None)
        record = PluginRecord(
            group=group,
            name=entry_point.name,
            target=entry_point.value,
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
        try:
            record.obj = entry_point.load()
        except Exception as exc:  # a broken third-party plugin must not take Coral down
            record.error = f"{type(exc).__name__}: {exc}"
        records.append(record)
    return records
