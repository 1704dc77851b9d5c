"""Metrics runtime: one hub per context, sinks for InfluxDB v2, Prometheus and JSON lines.

``build_metrics_hub(config.metrics, storage_root=…)`` builds a ``MetricsHub`` and
its sinks; the runtime context holds one (``context.metrics``) and closes it at
shutdown. ``PipelineMetrics`` turns pipeline results into fps, latency,
dropped-frame and per-class detection metrics. Nothing here imports ``inference``.
"""

from __future__ import annotations

from coral_inference.metrics.factory import build_metrics_hub
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
    "build_metrics_hub",
]
