"""Per-pipeline Prometheus series of many worker processes in one scrape.

Why files and not ``prometheus_client``'s multiprocess mode: that mode is chosen by
``PROMETHEUS_MULTIPROC_DIR`` at the first import of ``prometheus_client`` in *every*
process of the server, so it would change how inference's own metrics behave (and
it cannot hold some of their types), and Coral's sink creates metrics at run time
from the first point, which it cannot pre-declare per process. Instead each worker
renders its own registry (the Prometheus text format) into
``<export dir>/<pipeline key>-<pid>.prom`` once a second, written atomically, and
removes the file at shutdown, so a terminated pipeline's series leave the scrape.
:class:`WorkerFilesCollector` in the serving process merges every live worker's
file into its exposition, adding a ``pipeline`` label; files of processes that no
longer exist are ignored and deleted. The same pattern as node_exporter's textfile
collector.

The export directory is ``$CORAL_PROMETHEUS_DIR`` (the launcher sets it for its
server) or ``<storage.root>/prometheus``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from coral_inference.runtime.context import ContextKey, RuntimeContext
from coral_inference.runtime.process import current_pipeline_identity

logger = logging.getLogger("coral_inference.server.metrics")

EXPORT_DIR_ENV = "CORAL_PROMETHEUS_DIR"
EXPORT: ContextKey[WorkerExport] = ContextKey("coral.server.metrics_export")
SUFFIX = ".prom"
PIPELINE_LABEL = "pipeline"


def export_dir(config: Any | None = None) -> Path:
    """Where workers drop their series: ``$CORAL_PROMETHEUS_DIR``, else ``<root>/prometheus``."""
    if os.environ.get(EXPORT_DIR_ENV):
        return Path(os.environ[EXPORT_DIR_ENV])
    if config is None:
        raise ValueError(
            f"set {EXPORT_DIR_ENV} or pass the Coral config to find the export directory"
        )
    return Path(config.storage.root) / "prometheus"


def exported_by_files() -> bool:
    """True in a pipeline worker: its Prometheus series go to the export directory, not a port."""
    return current_pipeline_identity() is not None


class WorkerExport:
    """Writes one worker's registry to its export file every ``interval_s``; removes it on close."""

    def __init__(
        self, registry: CollectorRegistry, directory: Path, key: str, *, interval_s: float = 1.0
    ):
        self.registry = registry
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{key}-{os.getpid()}{SUFFIX}"
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="coral-prometheus-export", daemon=True
        )
        self._thread.start()

    def write(self) -> None:
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_bytes(generate_latest(self.registry))
        os.replace(temporary, self.path)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.write()
            except Exception as exc:  # noqa: BLE001 - retried next interval
                logger.warning("metrics export %s: %s", self.path, exc)
            self._stop.wait(self.interval_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def ensure_worker_export(context: RuntimeContext) -> WorkerExport | None:
    """Start this worker's export (once per context) when it has a Prometheus sink."""
    identity = current_pipeline_identity()
    if identity is None:
        return None
    if not any(sink.type == "prometheus" for sink in context.config.metrics.sinks.values()):
        return None
    hub = context.metrics
    directory = export_dir(context.config)
    return context.shared(
        EXPORT, lambda: WorkerExport(hub.prometheus_registry, directory, identity.key)
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerFilesCollector:
    """A collector for the serving process: every live worker's series, labelled by pipeline."""

    def __init__(self, directory: Path, *, max_age_s: float = 120.0):
        self.directory = directory
        self.max_age_s = max_age_s

    def describe(self) -> list[Metric]:
        return []

    def _files(self) -> Iterator[tuple[str, Path]]:
        if not self.directory.is_dir():
            return
        now = time.time()
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            key, _, pid_text = path.name.removesuffix(SUFFIX).rpartition("-")
            try:
                pid = int(pid_text)
                stale = not _alive(pid) or now - path.stat().st_mtime > self.max_age_s
            except (ValueError, FileNotFoundError):
                continue
            if stale:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            yield key, path

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for key, path in self._files():
            try:
                text = path.read_text(encoding="utf-8")
                families = list(text_string_to_metric_families(text))
            except (OSError, ValueError) as exc:
                logger.warning("metrics export %s unreadable: %s", path, exc)
                continue
            for family in families:
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                elif target.type != family.type:
                    continue
                for sample in family.samples:
                    labels = dict(sample.labels)
                    labels.setdefault(PIPELINE_LABEL, key)
                    target.samples.append(
                        Sample(sample.name, labels, sample.value, sample.timestamp, sample.exemplar)
                    )
        yield from merged.values()


def scrape(directory: Path) -> bytes:
    """The text exposition of every live worker's series."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerFilesCollector(directory))
    return generate_latest(registry)
