"""``RuntimeContext``: Coral's composition root — what ``init`` found, and what it builds once.

Every member is typed and built at most once per context, on first use, behind its
own lock: a model that takes seconds to load blocks only callers of that same model,
never a block asking for the metrics hub or another model. The context lock guards
only the list of closers and the closed flag.

Members:

* ``models``: ``ModelCache`` — ``LoadedModel`` per (reference, backend); also
  ``get_model(name, backend)``.
* ``metrics``: ``MetricsHub`` from ``metrics``.
* ``recordings``: ``RecordingService`` from ``storage.recordings`` and ``recording``.
* ``streams``: ``StreamHub`` from ``services.streams``.
* ``backends``: ``BackendRegistry``; ``patches``: ``PatchSet``; ``platform``.
* ``shared(key, factory)``: a per-context singleton for an extension (the inference
  server's worker, a web plugin), keyed by a typed ``ContextKey[T]`` rather than a
  string, so the caller gets a ``T`` back.

Lower layers never see the context: each member is built from a typed config
section (``build_metrics_hub(config.metrics, …)``, ``ModelCatalog``…).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from coral_inference import compat
from coral_inference.backends.base import BackendAdapter
from coral_inference.backends.registry import BackendRegistry
from coral_inference.config.loader import LoadedConfig
from coral_inference.config.schema import RuntimeDescriptor
from coral_inference.metrics.factory import build_metrics_hub
from coral_inference.metrics.hub import MetricsHub
from coral_inference.models.catalog import ModelCatalog
from coral_inference.patches.registry import PatchSet
from coral_inference.platform import PlatformInfo
from coral_inference.plugins import PluginRecord
from coral_inference.runtime.errors import RuntimeClosedError
from coral_inference.runtime.process import current_pipeline_identity

if TYPE_CHECKING:
    from coral_inference.media.recorder import RecordingService
    from coral_inference.media.webrtc import StreamHub
    from coral_inference.models.loaded import LoadedModel

T = TypeVar("T")


@dataclass(frozen=True)
class ContextKey(Generic[T]):
    """A typed key for ``RuntimeContext.shared``: ``ContextKey[Observer]("server.observer")``."""

    name: str


class _Once(Generic[T]):
    """A value built at most once, under its own lock; ``close`` registered with the context."""

    def __init__(self, context: RuntimeContext, label: str, factory: Callable[[], T]):
        self._context = context
        self._label = label
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._built = False

    def get(self) -> T:
        if self._built:  # fast path: no lock once built
            return self._value  # type: ignore[return-value]  (set before _built)
        with self._lock:
            if not self._built:
                self._context.check_open()
                value = self._factory()
                self._value = value
                self._built = True
                closer = getattr(value, "close", None)
                if callable(closer):
                    self._context.on_shutdown(self._label, closer)
            return self._value  # type: ignore[return-value]

    @property
    def built(self) -> bool:
        return self._built


class ModelCache:
    """Loaded models of one context, one lock per (reference, backend)."""

    def __init__(self, context: RuntimeContext, catalog: ModelCatalog):
        self._context = context
        self._catalog = catalog
        self._entries: dict[tuple[str, str | None], _Once[LoadedModel]] = {}
        self._lock = threading.Lock()  # held only to find or add an entry, never while loading

    def get(self, name: str, backend: str | None = None) -> LoadedModel:
        key = (name, backend)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Once(
                    self._context, f"model {name}", lambda: _load(self._catalog, name, backend)
                )
                self._entries[key] = entry
        return entry.get()

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            entries = list(self._entries.values())
        return [entry.get() for entry in entries if entry.built]


class RuntimeContext:
    def __init__(
        self,
        loaded: LoadedConfig,
        platform: PlatformInfo,
        backends: BackendRegistry,
        patches: PatchSet,
        web_plugins: list[PluginRecord],
        init_source: str,
    ):
        self.loaded = loaded
        self.platform = platform
        self.backends = backends
        self.patches = patches
        self.web_plugins = web_plugins
        self.init_source = init_source
        self._closers: list[tuple[str, Callable[[], object]]] = []
        self._lock = threading.RLock()
        self.closed = False
        cfg = loaded.descriptor
        self.catalog = ModelCatalog(
            backends=backends, entries=dict(cfg.models), order=tuple(cfg.backends.order)
        )
        self.models = ModelCache(self, self.catalog)
        self._metrics = _Once(self, "metrics hub", lambda: _metrics_hub(cfg))
        self._recordings = _Once(self, "recordings", lambda: _recording_service(cfg))
        self._streams = _Once(self, "stream hub", lambda: _stream_hub(cfg))
        self._inference_model_class = _Once(
            self, "inference model class", lambda: _model_class(self)
        )
        self._shared: dict[ContextKey[Any], _Once[Any]] = {}

    @property
    def config(self) -> RuntimeDescriptor:
        return self.loaded.descriptor

    @property
    def metrics(self) -> MetricsHub:
        """The metrics hub (``metrics.sinks``), built on first use, closed at shutdown."""
        return self._metrics.get()

    @property
    def recordings(self) -> RecordingService:
        """Recorders and their retention under ``storage.recordings``."""
        return self._recordings.get()

    @property
    def streams(self) -> StreamHub:
        """Live WebRTC preview channels (``services.streams``)."""
        return self._streams.get()

    @property
    def inference_model_class(self) -> type:
        """The inference ``Model`` class serving this context's packages (``coral/<name>``)."""
        return self._inference_model_class.get()

    def get_backend(self, name: str) -> BackendAdapter:
        """A registered backend by name, or the preferred available one for ``"auto"``."""
        return self.backends.choose(name, self.config.backends.order)

    def get_model(self, name: str, backend: str | None = None) -> LoadedModel:
        """A loaded model (package + session) by config name or package path, cached."""
        return self.models.get(name, backend)

    def is_patch_enabled(self, name: str) -> bool:
        return self.patches.is_enabled(name)

    def shared(self, key: ContextKey[T], factory: Callable[[], T]) -> T:
        """The context's one ``T`` for ``key`` (an extension's singleton), closed at shutdown."""
        with self._lock:
            self.check_open()
            entry = self._shared.get(key)
            if entry is None:
                entry = _Once(self, f"shared {key.name}", factory)
                self._shared[key] = entry
        return entry.get()

    def check_open(self) -> None:
        if self.closed:
            raise RuntimeClosedError(
                "this Coral runtime context was shut down; call coral_inference.init() again"
            )

    def on_shutdown(self, label: str, closer: Callable[[], object]) -> None:
        with self._lock:
            self._closers.append((label, closer))

    def close(self) -> list[str]:
        """Stop background work, close sessions, disable patches; returns any errors."""
        errors: list[str] = []
        with self._lock:
            if self.closed:
                return errors
            self.closed = True
            closers, self._closers = self._closers, []
        while closers:
            label, closer = closers.pop()
            try:
                closer()
            except Exception as exc:  # one failing closer must not leave the rest open
                errors.append(f"{label}: {type(exc).__name__}: {exc}")
        self.patches.disable_all(self)
        self.backends.close()
        return errors

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary: platform, inference, backends, patches, plugins."""
        info = compat.inference_info()
        return {
            "coral_version": _coral_version(),
            "python": sys.version.split()[0],
            "init": self.init_source,
            "config_file": str(self.loaded.file) if self.loaded.file else None,
            "platform": self.platform.as_dict(),
            "inference": info.as_dict()
            if info
            else {"installed": False, "supported_range": str(compat.SUPPORTED_INFERENCE)},
            "backends": self.backends.describe(),
            "patches": self.patches.describe(),
            "plugins": {
                "workflows": list(self.config.plugins.workflows),
                "web": [record.as_dict() for record in self.web_plugins],
            },
        }


def _load(catalog: ModelCatalog, name: str, backend: str | None) -> LoadedModel:
    from coral_inference.models.loaded import load_model  # heavy: supervision (seconds)

    return load_model(catalog, name, backend)


def _metrics_hub(cfg: RuntimeDescriptor) -> MetricsHub:
    # Read when the hub is built: a pipeline worker sets its identity before the first frame.
    identity = current_pipeline_identity()
    return build_metrics_hub(
        cfg.metrics,
        storage_root=cfg.storage.root,
        worker_key=identity.key if identity is not None else None,
    )


def _model_class(context: RuntimeContext) -> type:
    from coral_inference.models.inference_registry import build_model_class  # heavy: supervision

    return build_model_class(context)


def _recording_service(cfg: RuntimeDescriptor) -> RecordingService:
    from coral_inference.media.recorder import RecordingService  # heavy: av (PyAV/FFmpeg)

    return RecordingService(cfg.storage.recordings, cfg.recording)


def _stream_hub(cfg: RuntimeDescriptor) -> StreamHub:
    from coral_inference.media.webrtc import StreamHub  # heavy: aiortc, av

    return StreamHub.from_config(cfg.services.streams)


def _coral_version() -> str:

    try:
        return version("coral-inference")
    except PackageNotFoundError:
        return "unknown (not installed)"
