"""InfluxDB v2 sink: batched writes through ``influxdb-client``, retry with backoff, disk spool.

While the spool holds anything, new batches are appended to it too, and the
worker replays it oldest first: points reach the server in the order they
were emitted, an outage or a restart loses nothing within ``max_spool_bytes``,
and a batch leaves the spool only after the server accepted it. Every point
carries its own nanosecond timestamp, so a batch written twice (a reply lost
after the server stored it) overwrites itself in InfluxDB instead of doubling.
A 4xx reply means the batch itself is bad: it is dropped and counted, never
retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from coral_inference.config.schema import InfluxSinkConfig
from coral_inference.metrics.hub import MetricPoint
from coral_inference.metrics.sinks import QueuedSink
from coral_inference.metrics.spool import DiskSpool

logger = logging.getLogger("coral_inference.metrics.influx")

WriteFn = Callable[[list[str]], None]


class RejectedBatchError(Exception):
    """The server refused the batch itself (HTTP 4xx): retrying cannot help."""


def _escape(text: str, specials: str) -> str:
    for ch in "\\" + specials:
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", "\\n")


def to_line_protocol(point: MetricPoint) -> str:
    """One InfluxDB line: ``measurement,tag=v field=1.0 <ns>`` (tags sorted)."""
    head = _escape(point.measurement, ", ")
    tags = "".join(
        f",{_escape(k, ',= ')}={_escape(v, ',= ')}"
        for k, v in sorted(point.tags.items())
        if v != ""
    )
    fields = ",".join(f"{_escape(k, ',= ')}={float(v)!r}" for k, v in point.fields.items())
    return f"{head}{tags} {fields} {point.time_ns}"


def influx_writer(
    url: str, token: str, org: str, bucket: str, timeout_s: float
) -> tuple[WriteFn, Callable[[], None]]:
    """A synchronous ``write(lines)`` over influxdb-client and its ``close``."""
    # heavy: influxdb-client (urllib3, dateutil, reactivex: ~1.2 s), only for an Influx sink
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.domain.write_precision import WritePrecision
    from influxdb_client.rest import ApiException

    client = InfluxDBClient(
        url=url, token=token or "unused", org=org, timeout=int(timeout_s * 1000), retries=False
    )
    api = client.write_api(write_options=SYNCHRONOUS)

    def write(lines: list[str]) -> None:
        try:
            # influxdb-client annotates the parameter as its class; its constants are str
            precision = cast(WritePrecision, WritePrecision.NS)
            api.write(bucket=bucket, org=org, record=lines, write_precision=precision)
        except ApiException as exc:
            if (
                exc.status is not None
                and 400 <= int(exc.status) < 500
                and int(exc.status) not in (401, 403, 408, 429)
            ):
                raise RejectedBatchError(f"HTTP {exc.status}: {exc.body!r}") from exc
            raise

    def close() -> None:
        api.close()
        client.close()

    return write, close


class InfluxSink(QueuedSink):
    def __init__(
        self, name: str, cfg: InfluxSinkConfig, *, spool_dir: Path, write: WriteFn | None = None
    ):
        self.cfg = cfg
        self.spool = DiskSpool(spool_dir, cfg.max_spool_bytes)
        if write is None:
            self._write, self._close_client = influx_writer(
                cfg.url, cfg.token, cfg.org, cfg.bucket, cfg.timeout_s
            )
        else:
            self._write, self._close_client = write, (lambda: None)
        self._backoff = 0.0
        self._retry_at = 0.0
        self.online = True
        super().__init__(
            name,
            max_queue=cfg.max_queue,
            batch_size=cfg.batch_size,
            flush_interval_s=cfg.flush_interval_s,
        )
        self.stats.spooled = self.spool.lines
        if len(self.spool):
            logger.info(
                "metrics sink %s: %d spooled points from a previous run will be replayed",
                name,
                self.spool.lines,
            )

    def idle_wait(self) -> float:
        if len(self.spool):
            return max(0.01, min(self.flush_interval_s, self._retry_at - time.monotonic()))
        return self.flush_interval_s

    def handle_batch(self, batch: list[MetricPoint]) -> None:
        lines = [to_line_protocol(p) for p in batch]
        if len(self.spool) or time.monotonic() < self._retry_at:
            self._to_spool(lines)  # keep order: older spooled points go first
            return
        if not self._send(lines):
            self._to_spool(lines)

    def tick(self) -> None:
        # Replay a few batches per round so fresh points keep flowing into the spool's tail.
        for _ in range(8):
            if not len(self.spool) or time.monotonic() < self._retry_at:
                return
            batch = self.spool.oldest()
            if batch is None:
                return
            if not self._send(batch.lines, replay=True):
                return
            self.spool.remove(batch)
            self.stats.spooled = self.spool.lines

    def _send(self, lines: list[str], replay: bool = False) -> bool:
        try:
            self._write(lines)
        except RejectedBatchError as exc:
            self.stats.dropped += len(lines)
            self.stats.errors += 1
            self.stats.last_error = str(exc)
            logger.error(
                "metrics sink %s: server rejected %d points: %s", self.name, len(lines), exc
            )
            return True  # consumed: never retried
        except Exception as exc:
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self._backoff = min(
                self.cfg.retry_max_s, max(self.cfg.retry_initial_s, self._backoff * 2)
            )
            self._retry_at = time.monotonic() + self._backoff
            if self.online:
                logger.warning(
                    "metrics sink %s offline (%s); spooling to %s",
                    self.name,
                    self.stats.last_error,
                    self.spool.directory,
                )
            self.online = False
            return False
        self.stats.sent += len(lines)
        if not self.online:
            logger.info("metrics sink %s back online", self.name)
        self.online, self._backoff, self._retry_at = True, 0.0, 0.0
        return True

    def _to_spool(self, lines: list[str]) -> None:
        dropped = self.spool.append(lines)
        self.stats.dropped += dropped
        self.stats.spooled = self.spool.lines

    def closed(self) -> None:
        self._close_client()
