"""``ModelCatalog``: what resolving and loading a model needs, typed, without a context."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from coral_inference.backends.registry import BackendRegistry
from coral_inference.config.schema import ModelEntry


@dataclass(frozen=True)
class ModelCatalog:
    """The configured models (``models``), the backend registry and ``backends.order``.

    ``RuntimeContext`` builds one from its configuration; a tool that has no context
    (a test, a converter) builds its own: ``ModelCatalog(BackendRegistry(...))``.
    """

    backends: BackendRegistry
    entries: Mapping[str, ModelEntry] = field(default_factory=dict)
    order: tuple[str, ...] = ()
