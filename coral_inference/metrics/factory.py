"""``build_metrics_hub``: a ``MetricsHub`` and its sinks from the ``metrics`` config section.

Kept apart from ``hub`` so that the hub (what sinks plug into) never imports the
sinks (which import the hub's point and stats types): no cycle.
"""

from __future__ import annotations

from pathlib import Path

from coral_inference.config.schema import (
    InfluxSinkConfig,
    JsonLinesSinkConfig,
    MetricsConfig,
    PrometheusSinkConfig,
    SinkConfig,
)
from coral_inference.metrics.hub import MetricsHub, MetricSink
from coral_inference.metrics.influx import InfluxSink
from coral_inference.metrics.jsonl import JsonLinesSink
from coral_inference.metrics.prometheus import PrometheusSink


def build_metrics_hub(
    metrics: MetricsConfig, *, storage_root: Path, worker_key: str | None = None
) -> MetricsHub:
    """A hub with one sink per ``metrics.sinks`` entry.

    ``worker_key`` is set in a pipeline worker process (``runtime.process``): its
    Influx spool gets its own folder and its Prometheus series are exported to the
    serving process instead of opening the port itself.
    """
    hub = MetricsHub()
    for name, sink_cfg in metrics.sinks.items():
        hub.add_sink(
            build_sink(name, sink_cfg, hub, storage_root=storage_root, worker_key=worker_key)
        )
    return hub


def build_sink(
    name: str,
    cfg: SinkConfig,
    hub: MetricsHub,
    *,
    storage_root: Path,
    worker_key: str | None = None,
) -> MetricSink:
    """A sink instance for one ``metrics.sinks`` entry."""
    if isinstance(cfg, InfluxSinkConfig):
        spool = Path(cfg.spool_dir or Path(storage_root) / "spool" / name)
        if worker_key is not None:  # one spool per pipeline worker: no two processes share files
            spool = spool / worker_key
        return InfluxSink(name, cfg, spool_dir=spool)
    if isinstance(cfg, PrometheusSinkConfig):
        # A pipeline worker exports its series to the serving process instead of
        # opening the port itself (one port, many processes: coral_inference.server).
        port = None if worker_key is not None else cfg.port
        return PrometheusSink(name, hub.prometheus_registry, port=port, host=cfg.host)
    if isinstance(cfg, JsonLinesSinkConfig):
        return JsonLinesSink(name, cfg.path)
    raise ValueError(f"metrics sink {name!r}: unknown type {type(cfg).__name__}")
