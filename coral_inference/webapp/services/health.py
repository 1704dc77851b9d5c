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

Check = Callable[[], Awaitable[tuple[bool, str]]]


class HealthService:
    def __init__(self, checks: dict[str, Check], wanted: list[str], *, registry: Callable[[], CollectorRegistry]):
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
        for name, check in self._checks.items():
            try:
                ok, detail = await check()
            except Exception as exc:  # a check that breaks is a failing check
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results[name] = {"ok": ok, "detail": detail}
        failing = [name for name, r in results.items() if not r["ok"]]
        body = {"status": "ready" if not failing else "not_ready", "failing": failing, "checks": results}
        return not failing, body

    def metrics(self) -> tuple[bytes, str]:
        return generate_latest(self._registry()), CONTENT_TYPE_LATEST


class WebCollector:
    """Web-plane gauges at /metrics: pipelines by state, stream viewers, uptime."""

    def __init__(self, pipeline_statuses: Callable[[], list[dict[str, Any]]], peers: Callable[[], int],
                 started_at: float):
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
        return [by_state, peers, uptime]
