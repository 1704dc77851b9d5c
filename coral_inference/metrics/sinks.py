"""Sink plumbing shared by the queued sinks, and ``build_sink`` from a sink config.

``QueuedSink`` is a bounded in-memory queue drained by one worker thread in
batches (``batch_size`` points or ``flush_interval_s``, whichever first);
``offer`` is a lock and an append, and a full queue drops the newest point and
counts it. Concrete sinks implement ``handle_batch``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from coral_inference.metrics.hub import MetricPoint, SinkStats
from coral_inference.runtime.process import current_pipeline_identity

logger = logging.getLogger("coral_inference.metrics")


class QueuedSink:
    """A sink whose work happens on its own thread; subclasses implement ``handle_batch``."""

    def __init__(self, name: str, *, max_queue: int, batch_size: int, flush_interval_s: float):
        self.name = name
        self.stats = SinkStats()
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._max_queue = max_queue
        self._queue: deque[MetricPoint] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"coral-metrics-{name}", daemon=True)
        self._thread.start()

    def offer(self, point: MetricPoint) -> bool:
        with self._cond:
            if self._stop or len(self._queue) >= self._max_queue:
                self.stats.dropped += 1
                return False
            self._queue.append(point)
            self.stats.queued = len(self._queue)
            if len(self._queue) >= self.batch_size:
                self._cond.notify()
        return True

    def _take(self, wait: bool) -> list[MetricPoint]:
        with self._cond:
            if wait and len(self._queue) < self.batch_size and not self._stop:
                self._cond.wait(self.idle_wait())
            n = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self.stats.queued = len(self._queue)
            return batch

    def idle_wait(self) -> float:
        """How long the worker sleeps when there is less than a batch."""
        return self.flush_interval_s

    def _run(self) -> None:
        while True:
            batch = self._take(wait=True)
            stopping = self._stop
            try:
                if batch:
                    self.handle_batch(batch)
                self.tick()
            except Exception as exc:  # a sink failure must never end the worker
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("metrics sink %s: %s", self.name, self.stats.last_error)
            if stopping and not self._queue:
                return

    def handle_batch(self, batch: list[MetricPoint]) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Periodic work between batches (retries, spool replay)."""

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self.closed()

    def closed(self) -> None:
        """Release resources after the worker ended."""


def build_sink(name: str, cfg: Any, hub: Any, config: Any) -> Any:
    """A sink instance for one ``metrics.sinks`` entry."""
    if cfg.type == "influxdb":
        from coral_inference.metrics.influx import InfluxSink

        spool = cfg.spool_dir or Path(config.storage.root) / "spool" / name
        identity = current_pipeline_identity()
        if identity is not None:  # one spool per pipeline worker: no two processes share files
            spool = Path(spool) / identity.key
        return InfluxSink(name, cfg, spool_dir=spool)
    if cfg.type == "prometheus":
        from coral_inference.metrics.prometheus import PrometheusSink

        # A pipeline worker exports its series to the serving process instead of
        # opening the port itself (one port, many processes: coral_inference.server).
        port = None if current_pipeline_identity() is not None else cfg.port
        return PrometheusSink(name, hub.prometheus_registry, port=port, host=cfg.host)
    if cfg.type == "jsonl":
        from coral_inference.metrics.jsonl import JsonLinesSink

        return JsonLinesSink(name, cfg.path)
    raise ValueError(f"metrics sink {name!r}: unknown type {cfg.type!r}")


def now_ns() -> int:
    return time.time_ns()
