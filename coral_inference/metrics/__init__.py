"""Metrics runtime: one hub per context, sinks for InfluxDB v2, Prometheus and JSON lines.

``get_metrics_hub(context)`` returns the context's ``MetricsHub`` (built from
``metrics.sinks``, closed at shutdown). ``PipelineMetrics`` turns pipeline
results into fps, latency, dropped-frame and per-class detection metrics.
Nothing here imports ``inference``.
"""

from __future__ import annotations

from typing import Any

from coral_inference.metrics.hub import (
    InvalidMetricError,
    MetricPoint,
    MetricsError,
    MetricsHub,
    UnknownSinkError,
)
from coral_inference.metrics.pipeline import PipelineMetrics

__all__ = [
    "InvalidMetricError",
    "MetricPoint",
    "MetricsError",
    "MetricsHub",
    "PipelineMetrics",
    "UnknownSinkError",
    "get_metrics_hub",
]


def get_metrics_hub(context: Any) -> MetricsHub:
    """The context's metrics hub, created on first use and closed at shutdown."""
    return context.service("coral.metrics.hub", lambda: MetricsHub.from_config(context.config))
