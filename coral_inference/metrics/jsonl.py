"""JSON lines sink: one object per point, appended to a file or written to standard output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from coral_inference.metrics.hub import MetricPoint
from coral_inference.metrics.sinks import QueuedSink


def point_to_json(point: MetricPoint) -> str:
    return json.dumps(
        {
            "measurement": point.measurement,
            "time_ns": point.time_ns,
            "tags": point.tags,
            "fields": point.fields,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


class JsonLinesSink(QueuedSink):
    def __init__(self, name: str, path: Path | None = None, *, max_queue: int = 10000):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(name, max_queue=max_queue, batch_size=256, flush_interval_s=0.5)

    def handle_batch(self, batch: list[MetricPoint]) -> None:
        text = "".join(point_to_json(p) + "\n" for p in batch)
        if self.path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            # One unbuffered append per batch: lines of several worker processes never interleave.
            with self.path.open("ab", buffering=0) as fh:
                fh.write(text.encode("utf-8"))
        self.stats.sent += len(batch)
