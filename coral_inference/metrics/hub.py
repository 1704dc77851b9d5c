"""The metrics hub: one ``emit`` call, several named sinks, none of which blocks the caller.

``emit`` validates a point (numeric, finite fields; known sink names) and hands
it to each target sink's ``offer``, which is a bounded-queue put or an
in-memory update: a slow or unreachable server costs the caller nothing more.
Each sink counts what it queued, sent, dropped and spooled (``stats()``), and
the hub exports those counts on its own Prometheus registry.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

MetricType = Literal["gauge", "counter", "histogram"]
METRIC_TYPES = ("gauge", "counter", "histogram")


class MetricsError(ValueError):
    """Base of the errors ``emit`` raises for a point it refuses."""


class InvalidMetricError(MetricsError):
    """A measurement, field or tag that cannot be written (names the offending key)."""


class UnknownSinkError(MetricsError):
    """A sink name that the configuration (``metrics.sinks``) does not define."""


class SinkStartError(MetricsError):
    """A configured sink that cannot start (e.g. its port is in use); names the sink and the fix."""


@dataclass(frozen=True)
class MetricPoint:
    measurement: str
    fields: dict[str, float]
    tags: dict[str, str]
    time_ns: int
    types: dict[str, MetricType] = field(default_factory=dict)


@dataclass
class SinkStats:
    queued: int = 0
    sent: int = 0
    dropped: int = 0
    spooled: int = 0
    errors: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class MetricSink(Protocol):
    name: str
    stats: SinkStats

    def offer(self, point: MetricPoint) -> bool:
        """Take the point without blocking; False when it was dropped."""
        ...

    def close(self) -> None: ...


def validate_point(
    measurement: Any,
    fields: Mapping[str, Any],
    tags: Mapping[str, Any] | None = None,
    types: Mapping[str, str] | None = None,
    time_ns: int | None = None,
) -> MetricPoint:
    """A ``MetricPoint`` from loose input, or ``InvalidMetricError`` naming what is wrong.

    >>> validate_point("people", {"in": 3}, {"camera": "gate"}).fields
    {'in': 3.0}
    """
    if not isinstance(measurement, str) or not measurement.strip():
        raise InvalidMetricError(f"measurement must be a non-empty string, got {measurement!r}")
    if not isinstance(fields, Mapping) or not fields:
        raise InvalidMetricError(
            f"measurement {measurement!r}: give at least one field, got {fields!r}"
        )
    clean_fields: dict[str, float] = {}
    for key, value in fields.items():
        if not isinstance(key, str) or not key:
            raise InvalidMetricError(
                f"measurement {measurement!r}: field names must be non-empty strings, got {key!r}"
            )
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, numbers.Real):
            raise InvalidMetricError(
                f"measurement {measurement!r}: field {key!r} must be a number, got {type(value).__name__} {value!r}"
            )
        number = float(value)
        if not math.isfinite(number):
            raise InvalidMetricError(
                f"measurement {measurement!r}: field {key!r} must be finite, got {value!r}"
            )
        clean_fields[key] = number
    clean_tags: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidMetricError(
                f"measurement {measurement!r}: tag names must be non-empty strings, got {key!r}"
            )
        if value is None or isinstance(value, (dict, list, tuple, set)):
            raise InvalidMetricError(
                f"measurement {measurement!r}: tag {key!r} must be a string, got {value!r}"
            )
        clean_tags[key] = str(value)
    clean_types: dict[str, MetricType] = {}
    for key, kind in (types or {}).items():
        if kind not in METRIC_TYPES:
            raise InvalidMetricError(
                f"measurement {measurement!r}: type of {key!r} must be one of {METRIC_TYPES}, got {kind!r}"
            )
        clean_types[key] = kind  # type: ignore[assignment]
    return MetricPoint(
        measurement=measurement.strip(),
        fields=clean_fields,
        tags=clean_tags,
        time_ns=time.time_ns() if time_ns is None else int(time_ns),
        types=clean_types,
    )


class MetricsHub:
    """Named sinks behind one non-blocking ``emit``."""

    def __init__(
        self,
        sinks: Mapping[str, MetricSink] | None = None,
        registry: CollectorRegistry | None = None,
    ):
        self.prometheus_registry = registry or CollectorRegistry(auto_describe=True)
        self._sinks: dict[str, MetricSink] = dict(sinks or {})
        self._lock = threading.Lock()
        self.rejected = 0
        self._closed = False
        self.prometheus_registry.register(_HubCollector(self))

    def add_sink(self, sink: MetricSink) -> None:
        with self._lock:
            if sink.name in self._sinks:
                raise ValueError(f"metrics sink {sink.name!r} is already registered")
            self._sinks[sink.name] = sink

    @property
    def sink_names(self) -> list[str]:
        return list(self._sinks)

    def sink(self, name: str) -> MetricSink:
        try:
            return self._sinks[name]
        except KeyError:
            raise UnknownSinkError(
                f"metrics sink {name!r} is not configured; configured sinks: {sorted(self._sinks) or 'none'} "
                "(add it under metrics.sinks in the config)"
            ) from None

    def check_sinks(self, names: Iterable[str] | None) -> list[str]:
        """The sink names a point goes to (all when ``names`` is None); unknown names raise."""
        if names is None:
            return list(self._sinks)
        names = list(names)
        for name in names:
            self.sink(name)
        return names

    def emit(
        self,
        measurement: str,
        fields: Mapping[str, Any],
        tags: Mapping[str, Any] | None = None,
        sinks: Iterable[str] | None = None,
        *,
        types: Mapping[str, str] | None = None,
        time_ns: int | None = None,
    ) -> MetricPoint:
        """Send one point to ``sinks`` (default: all); never blocks, raises ``MetricsError`` on bad input.

        ``types`` tells Prometheus how to expose a field: ``gauge`` (default),
        ``counter`` (the value is a running total) or ``histogram`` (observed).
        """
        targets = self.check_sinks(sinks)
        try:
            point = validate_point(measurement, fields, tags, types, time_ns)
        except InvalidMetricError:
            self.rejected += 1
            raise
        if self._closed:
            return point
        for name in targets:
            self._sinks[name].offer(point)
        return point

    def series_tag_values(self, tag: str) -> set[str]:
        """Values of ``tag`` in series the sinks still export (sinks that keep series: Prometheus)."""
        found: set[str] = set()
        for sink in list(self._sinks.values()):
            values = getattr(sink, "label_values", None)
            if values is not None:
                found |= values(tag)
        return found

    def forget_series(self, tag: str, values: set[str]) -> int:
        """Drop exported series whose ``tag`` is one of ``values`` (pipelines that no longer exist)."""
        removed = 0
        for sink in list(self._sinks.values()):
            forget = getattr(sink, "forget", None)
            if forget is not None:
                removed += forget(tag, values)
        return removed

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per sink: queued, sent, dropped, spooled, errors, last_error."""
        return {name: sink.stats.as_dict() for name, sink in list(self._sinks.items())}

    def close(self) -> None:
        """Flush and close every sink (the InfluxDB sink spools what it cannot send)."""
        self._closed = True
        for sink in list(self._sinks.values()):
            sink.close()


class _HubCollector:
    """Exports the hub's own sink counters, so a dropping sink is visible at /metrics."""

    def __init__(self, hub: MetricsHub):
        self._hub = hub

    def describe(self):
        return []

    def collect(self):
        counters = {
            key: CounterMetricFamily(
                f"coral_metrics_sink_{key}", f"Metric points {key} per sink", labels=["sink"]
            )
            for key in ("sent", "dropped", "spooled", "errors")
        }
        queued = GaugeMetricFamily(
            "coral_metrics_sink_queued", "Metric points waiting per sink", labels=["sink"]
        )
        for name, stats in self._hub.stats().items():
            for key, family in counters.items():
                family.add_metric([name], stats[key])
            queued.add_metric([name], stats["queued"])
        yield from counters.values()
        yield queued
