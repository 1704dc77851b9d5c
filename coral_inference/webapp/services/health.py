"""HealthService: liveness, readiness with the failing component named, Prometheus text.

Readiness aggregates the checks listed in ``services.health.readiness_checks``:

* ``database`` — the pipeline store answers a query;
* ``pipelines`` — persisted pipelines were restored (or restoring was off);
* ``monitor`` — the monitoring task is alive and sampled recently (when enabled);
* ``streams`` — the stream hub is open.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

Check = Callable[[], Awaitable[tuple[bool, str] | tuple[bool, str, bool]]]


class HealthService:
    def __init__(
        self,
        checks: dict[str, Check],
        wanted: list[str],
        *,
        registry: Callable[[], CollectorRegistry],
    ):
        unknown = [name for name in wanted if name not in checks]
        if unknown:
            raise ValueError(
                f"services.health.readiness_checks names unknown checks {unknown}; known: {sorted(checks)}"
            )
        self._checks = {name: checks[name] for name in wanted}
        self._registry = registry
        self.started_at = time.time()

    def live(self) -> dict[str, Any]:
        return {"status": "ok", "uptime_s": round(time.time() - self.started_at, 1)}

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        results = {}
        degraded = []
        for name, check in self._checks.items():
            try:
                outcome = await check()
            except Exception as exc:  # a check that breaks is a failing check
                outcome = (False, f"{type(exc).__name__}: {exc}")
            ok, detail = outcome[0], outcome[1]
            results[name] = {"ok": ok, "detail": detail}
            # A third value marks a passing check as degraded (e.g. a pipeline whose camera is down):
            # still ready (200), but named, so an operator or a probe can see it.
            if ok and len(outcome) > 2 and outcome[2]:
                degraded.append(name)
        failing = [name for name, r in results.items() if not r["ok"]]
        status = "not_ready" if failing else "degraded" if degraded else "ready"
        body = {"status": status, "failing": failing, "degraded": degraded, "checks": results}
        return not failing, body

    def metrics(self) -> tuple[bytes, str]:
        return generate_latest(self._registry()), CONTENT_TYPE_LATEST


class WebCollector:
    """Web-plane gauges at /metrics: pipelines by state, stream viewers, uptime."""

    def __init__(
        self,
        pipeline_statuses: Callable[[], list[dict[str, Any]]],
        peers: Callable[[], int],
        started_at: float,
    ):
        self._statuses = pipeline_statuses
        self._peers = peers
        self._started_at = started_at

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        by_state = GaugeMetricFamily("coral_web_pipelines", "Pipelines by state", labels=["state"])
        counts: dict[str, int] = {}
        for status in self._statuses():
            counts[status["state"]] = counts.get(status["state"], 0) + 1
        for state, n in sorted(counts.items()):
            by_state.add_metric([state], n)
        peers = GaugeMetricFamily("coral_web_stream_viewers", "WebRTC viewers connected")
        peers.add_metric([], self._peers())
        uptime = GaugeMetricFamily("coral_web_uptime_seconds", "Seconds since the web app started")
        uptime.add_metric([], time.time() - self._started_at)
        return [by_state, peers, uptime, *self._per_pipeline()]

    def _per_pipeline(self) -> list[Any]:
        """Figures of every pipeline's worker, by ``pipeline_id`` (present while it runs)."""
        families = {
            key: GaugeMetricFamily(name, text, labels=["pipeline_id"])
            for key, name, text in (
                ("fps", "coral_pipeline_status_fps", "Frames per second delivered"),
                (
                    "frames",
                    "coral_pipeline_status_frames",
                    "Frames delivered since the worker started",
                ),
                ("restarts", "coral_pipeline_restarts", "Worker restarts by the supervisor"),
                (
                    "rss_bytes",
                    "coral_pipeline_rss_bytes",
                    "Resident memory of the pipeline's worker",
                ),
                (
                    "cpu_percent",
                    "coral_pipeline_cpu_percent",
                    "CPU of the pipeline's worker (100 = one core)",
                ),
                ("threads", "coral_pipeline_threads", "Threads of the pipeline's worker"),
                (
                    "open_files",
                    "coral_pipeline_open_files",
                    "Open file descriptors of the pipeline's worker",
                ),
            )
        }
        for status in self._statuses():
            labels = [str(status.get("id"))]
            figures = {
                "fps": status.get("fps"),
                "frames": status.get("frames"),
                "restarts": status.get("restarts"),
            }
            figures.update(status.get("resources") or {})
            for key, family in families.items():
                value = figures.get(key)
                if isinstance(value, (int, float)):
                    family.add_metric(labels, float(value))
        return list(families.values())
