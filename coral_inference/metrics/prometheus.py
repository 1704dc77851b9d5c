"""Prometheus sink: points become gauges, counters or histograms on the hub's registry.

A field ``f`` of measurement ``m`` is exposed as ``m_f`` (names sanitised), its
tags as labels. The label names of a metric are fixed by its first point; a
later point with fewer tags fills them with "" and extra tags are ignored and
counted, since Prometheus cannot change a metric's labels. Updates happen in
``offer`` itself: they are in-memory and take a few microseconds. An optional
standalone exporter serves the registry on its own port.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from coral_inference.metrics.hub import MetricPoint, SinkStartError, SinkStats

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def metric_name(*parts: str) -> str:
    """``metric_name("people counter", "in") == "people_counter_in"``."""
    name = _INVALID.sub("_", "_".join(parts))
    return name if re.match(r"[a-zA-Z_:]", name) else f"_{name}"


def label_name(tag: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", "_", tag)
    return (
        name
        if re.match(r"[a-zA-Z_]", name) and not name.startswith("__")
        else f"tag_{name.lstrip('_')}"
    )


class PrometheusSink:
    def __init__(
        self,
        name: str,
        registry: CollectorRegistry,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
    ):
        self.name = name
        self.registry = registry
        self.stats = SinkStats()
        self.label_conflicts = 0
        self._metrics: dict[str, tuple[Any, tuple[str, ...], str]] = {}
        self._totals: dict[tuple, float] = {}
        self._children: dict[str, set[tuple[str, ...]]] = {}  # metric name -> label values exported
        self._lock = threading.Lock()
        self._server = None
        if port is not None:
            try:
                self._server, _ = start_http_server(port, addr=host, registry=registry)
            except OSError as exc:
                raise SinkStartError(
                    f"metrics sink {name!r}: cannot serve /metrics on {host}:{port}: {exc.strerror or exc}; "
                    f"choose a free port in metrics.sinks.{name}.port, or remove it and scrape the web app "
                    "or the inference server's /coral/metrics"
                ) from exc

    def offer(self, point: MetricPoint) -> bool:
        labels_in = {label_name(k): v for k, v in point.tags.items()}
        try:
            for field, value in point.fields.items():
                self._update(point, field, value, labels_in)
        except Exception as exc:  # e.g. a name clash with a metric registered elsewhere
            self.stats.errors += 1
            self.stats.last_error = f"{point.measurement}: {type(exc).__name__}: {exc}"
            return False
        self.stats.sent += 1
        return True

    def _update(
        self, point: MetricPoint, field: str, value: float, labels_in: dict[str, str]
    ) -> None:
        # The first point decides a metric's type and labels; later ones follow them.
        metric, labels, kind = self._metric(
            point.measurement, field, point.types.get(field, "gauge"), tuple(sorted(labels_in))
        )
        if set(labels_in) - set(labels):
            self.label_conflicts += 1
        values = tuple(labels_in.get(label, "") for label in labels)
        child = metric.labels(*values) if labels else metric
        if labels:
            with self._lock:
                self._children.setdefault(metric_name(point.measurement, field), set()).add(values)
        if kind == "gauge":
            child.set(value)
        elif kind == "histogram":
            child.observe(value)
        else:  # counter: the point carries a running total
            key = (point.measurement, field, values)
            with self._lock:
                previous = self._totals.get(key, 0.0)
                self._totals[key] = value
            # A smaller total means the producer restarted: count from zero again.
            child.inc(value - previous if value >= previous else value)

    def _metric(
        self, measurement: str, field: str, kind: str, labels: tuple[str, ...]
    ) -> tuple[Any, tuple[str, ...], str]:
        name = metric_name(measurement, field)
        with self._lock:
            existing = self._metrics.get(name)
            if existing is not None:
                return existing
            factory = {"gauge": Gauge, "counter": Counter, "histogram": Histogram}[kind]
            doc = f"{field} of {measurement} ({kind}, from Coral metrics)"
            metric = factory(
                name.removesuffix("_total") if kind == "counter" else name,
                doc,
                labels,
                registry=self.registry,
            )
            self._metrics[name] = (metric, labels, kind)
            return self._metrics[name]

    def label_values(self, label: str) -> set[str]:
        """Every value of tag ``label`` in an exported series (e.g. the pipeline ids with series)."""
        label = label_name(label)
        found: set[str] = set()
        with self._lock:
            for name, children in self._children.items():
                labels = self._metrics[name][1]
                if label in labels:
                    index = labels.index(label)
                    found.update(values[index] for values in children)
        return found

    def forget(self, label: str, values: set[str]) -> int:
        """Remove every series whose tag ``label`` is one of ``values`` (a deleted pipeline's); returns how many.

        Without this a deleted pipeline's last fps and latency stay on /metrics for the life of the process.
        """
        label = label_name(label)
        removed = 0
        with self._lock:
            for name, children in self._children.items():
                metric, labels, _ = self._metrics[name]
                if label not in labels:
                    continue
                index = labels.index(label)
                for child in [c for c in children if c[index] in values]:
                    metric.remove(*child)
                    children.discard(child)
                    removed += 1
            for key in list(self._totals):
                measurement, field, child = key
                labels = self._metrics[metric_name(measurement, field)][1]
                if label in labels and child[labels.index(label)] in values:
                    del self._totals[key]
        return removed

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
