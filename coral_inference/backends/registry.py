"""Backends by name: registered in code or discovered through entry points.

Several adapters live in one process; each is built once per registry from its
factory and its options. A factory that fails (import error, bad options) is
recorded with the reason and the registry carries on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from coral_inference.backends.base import BackendAdapter, ProbeResult, UnknownBackendError
from coral_inference.config.backend_options import options_model_of
from coral_inference.plugins import BACKENDS_GROUP, PluginRecord, discover

BackendFactory = Callable[..., BackendAdapter]


@dataclass
class BackendEntry:
    name: str
    origin: str  # "entry point <dist> <version>" or "registered in code"
    factory: BackendFactory | None
    adapter: BackendAdapter | None = None
    error: str | None = None
    probe: ProbeResult | None = None

    def as_dict(self) -> dict[str, Any]:
        probe = self.probe.as_dict() if self.probe else None
        if self.error:
            probe = {"available": False, "reason": self.error, "details": {}, "devices": []}
        return {"name": self.name, "origin": self.origin, **(probe or {})}


class BackendRegistry:
    """Named backend adapters with availability; built per runtime context."""

    def __init__(self, options: Mapping[str, Any] | None = None):
        self._options = dict(options or {})
        self._entries: dict[str, BackendEntry] = {}

    def register(
        self, name: str, factory: BackendFactory, *, origin: str = "registered in code"
    ) -> BackendEntry:
        """Add (or replace) a backend; the adapter is built now with its options.

        A factory that declares ``options_model`` gets an instance of it (validated
        here too, for options that did not come through the config loader).
        """
        entry = BackendEntry(name=name, origin=origin, factory=factory)
        try:
            options = self._options.get(name)
            model = options_model_of(factory)
            if model is not None and not isinstance(options, model):
                options = model.model_validate(options or {})
            adapter = factory(options)
            if getattr(adapter, "name", name) != name:
                raise TypeError(f"adapter reports name {adapter.name!r}, registered as {name!r}")
            entry.adapter = adapter
            entry.probe = adapter.probe()
        except Exception as exc:  # a broken adapter is reported, never fatal
            entry.error = f"{type(exc).__name__}: {exc}"
        self._entries[name] = entry
        return entry

    def add_failed(self, record: PluginRecord) -> None:
        self._entries[record.name] = BackendEntry(
            name=record.name,
            origin=_origin(record),
            factory=None,
            error=f"plugin failed to load: {record.error}",
        )

    def discover(self, *, skip: tuple[str, ...] = ()) -> list[PluginRecord]:
        """Register every backend of the ``coral_inference.backends`` entry-point group."""
        records = discover(BACKENDS_GROUP, skip=skip)
        for record in records:
            if record.loaded:
                self.register(record.name, record.obj, origin=_origin(record))
            else:
                self.add_failed(record)
        return records

    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> BackendEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownBackendError(
                f"unknown backend {name!r}; registered: {', '.join(self._entries) or 'none'}"
            ) from None

    def get(self, name: str) -> BackendAdapter:
        """The adapter of a registered backend (even if unavailable: its probe says why)."""
        entry = self.entry(name)
        if entry.adapter is None:
            raise UnknownBackendError(
                f"backend {name!r} is registered but failed to load: {entry.error}"
            )
        return entry.adapter

    def available(self) -> list[str]:
        return [n for n, e in self._entries.items() if e.probe is not None and e.probe.available]

    def choose(self, requested: str, order: list[str]) -> BackendAdapter:
        """Resolve ``auto`` to the first available backend in ``order``; else the named one."""
        if requested != "auto":
            return self.get(requested)
        for name in order + [n for n in self._entries if n not in order]:
            if name in self.available():
                return self.get(name)
        reasons = "; ".join(
            f"{e.name}: {e.as_dict().get('reason')}" for e in self._entries.values()
        )
        raise UnknownBackendError(
            f"no backend is available for 'auto' ({reasons or 'none registered'})"
        )

    def close(self) -> None:
        for entry in self._entries.values():
            closer = getattr(entry.adapter, "close", None)
            if callable(closer):
                closer()
        self._entries.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self._entries.values()]


def _origin(record: PluginRecord) -> str:
    return f"entry point {record.target} ({record.distribution} {record.version})"
