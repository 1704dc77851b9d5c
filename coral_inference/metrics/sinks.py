"""Sink plumbing shared by the queued sinks (``metrics.factory`` builds them from config).

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

from coral_inference.metrics.hub import MetricPoint, SinkStats

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


def now_ns() -> int:
    return time.time_ns()
