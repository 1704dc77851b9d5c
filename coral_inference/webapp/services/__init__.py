"""The web plane's services, built from a runtime context, started and stopped together.

Routes reach them through ``Depends`` (``coral_inference.webapp.deps``); tests
build them directly. Background work (restoring and watching pipelines,
monitoring, warming up inference) lives here, owned by ``start``/``stop``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coral_inference.webapp.services.downloads import VideoDownloader
from coral_inference.webapp.services.health import HealthService, WebCollector
from coral_inference.webapp.services.monitor import MonitorService
from coral_inference.webapp.services.pipelines import PipelineService, PipelineSpec
from coral_inference.webapp.services.store import PipelineStore
from coral_inference.webapp.services.streams import StreamService

if TYPE_CHECKING:
    from coral_inference.runtime.context import RuntimeContext

__all__ = [
    "HealthService",
    "MonitorService",
    "PipelineService",
    "PipelineSpec",
    "StreamService",
    "WebServices",
]

logger = logging.getLogger("coral_inference.webapp")

# A monitor that has not sampled for this many intervals is reported not ready.
MONITOR_STALE_INTERVALS = 3


class WebServices:
    def __init__(self, context: RuntimeContext, **overrides: Any):
        cfg = context.config.services
        self.context = context
        self.store = PipelineStore(Path(cfg.pipelines.database))
        downloader = overrides.get("downloader") or VideoDownloader.from_config(cfg.pipelines)
        self.streams = StreamService(context, hub=overrides.get("hub"))
        self.pipelines = PipelineService(
            context,
            self.store,
            downloader,
            publish=self.streams.publish,
            frames=self.streams,
            **(
                {"runner_factory": overrides["runner_factory"]}
                if "runner_factory" in overrides
                else {}
            ),
        )
        self.monitor = MonitorService(
            context, self.pipelines.statuses, metrics_hub=overrides.get("metrics_hub")
        )
        self.health = HealthService(
            {
                "database": self._check_database,
                "pipelines": self._check_pipelines,
                "monitor": self._check_monitor,
                "streams": self._check_streams,
                "inference": self._check_inference,
            },
            list(cfg.health.readiness_checks),
            registry=lambda: self.monitor.metrics_hub.prometheus_registry,
        )
        self._collector: WebCollector | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self.started = False

    async def start(self) -> None:
        await self.store.open()
        await self.pipelines.load()
        registry = self.monitor.metrics_hub.prometheus_registry
        self._collector = WebCollector(
            self.pipelines.statuses, lambda: self.streams.hub.peer_count, time.time()
        )
        registry.register(self._collector)
        self._spawn("warmup", self.pipelines.warm_up())
        self._spawn("restore", self.pipelines.restore())
        self._spawn("watch", self.pipelines.watch())
        if self.monitor.enabled:
            self._spawn("monitor", self.monitor.run())
        self.started = True

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for name, task in self._tasks.items():
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("background task %s ended with an error", name)
        self._tasks.clear()
        await self.pipelines.close()
        if self._collector is not None:
            try:
                self.monitor.metrics_hub.prometheus_registry.unregister(self._collector)
            except KeyError:
                pass
            self._collector = None
        await self.store.close()
        self.started = False

    def _spawn(self, name: str, coro: Any) -> None:
        self._tasks[name] = asyncio.create_task(coro, name=f"coral-web-{name}")

    def task_states(self) -> dict[str, str]:
        return {
            name: (
                "running"
                if not t.done()
                else "failed"
                if not t.cancelled() and t.exception()
                else "done"
            )
            for name, t in self._tasks.items()
        }

    # ------------------------------------------------------------------ readiness checks

    async def _check_database(self) -> tuple[bool, str]:
        await self.store.ping()
        return True, f"{self.store.path} ({await self.store.journal_mode()})"

    async def _check_pipelines(self) -> tuple[bool, str] | tuple[bool, str, bool]:
        if not self.pipelines.restored.is_set():
            return False, "restoring persisted pipelines"
        warmup = self._tasks.get("warmup")
        if self.pipelines.isolation == "process" and warmup is not None and not warmup.done():
            # Workers fork from a server that imports inference once; until then no pipeline can start.
            return False, "starting the pipeline workers' forkserver (importing inference)"
        statuses = self.pipelines.statuses()
        failed = [s["id"] for s in statuses if s["state"] == "failed"]
        # Wanted running but not delivering: a camera down (reconnecting) or a worker coming back.
        degraded = [s["id"] for s in statuses if s["state"] in ("reconnecting", "restarting")]
        detail = f"{self.pipelines.active_count()} active"
        if self.pipelines.restore_errors:
            detail += f"; not restored: {sorted(self.pipelines.restore_errors)}"
        if failed:
            detail += f"; failed: {failed}"
        if degraded:
            detail += f"; degraded (reconnecting or restarting): {degraded}"
        # A failed pipeline is reported, it does not make the app unready.
        return True, detail, bool(degraded)

    async def _check_monitor(self) -> tuple[bool, str]:
        if not self.monitor.enabled:
            return True, "disabled (services.monitoring.enabled=false)"
        task = self._tasks.get("monitor")
        if task is None or task.done():
            return False, "monitoring task is not running"
        last = self.monitor.last_sample_at
        if last is None:
            return True, "starting"
        age = time.time() - last
        if age > MONITOR_STALE_INTERVALS * self.monitor.interval_s + 5:
            return False, f"last sample {age:.0f} s ago"
        return True, f"last sample {age:.1f} s ago"

    async def _check_inference(self) -> tuple[bool, str]:
        task = self._tasks.get("warmup")
        if task is not None and not task.done():
            return False, "importing inference"
        return True, "loaded"

    async def _check_streams(self) -> tuple[bool, str]:
        hub = self.streams.hub
        if getattr(hub, "_closed", False):
            return False, "stream hub is closed"
        return True, f"{hub.peer_count} viewer(s), {len(hub.channels())} channel(s)"
