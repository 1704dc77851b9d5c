"""MonitorService: host and pipeline metrics, their recent history, and disk cleanup.

Every ``services.monitoring.poll_interval_s`` it samples the host (CPU, memory,
disk of the storage root, NPU/GPU load where ``/sys`` exposes it) and every
pipeline's status, keeps a bounded history for the dashboard charts, and emits
host figures to the metric sinks named in ``services.monitoring.sinks``
(pipelines emit their own through ``PipelineMetrics``).

The monitor does not delete anything: it registers the disk quota
(``disk_quota_bytes`` over recordings and results, ``min_free_bytes`` on the disk,
oldest files first, never a file written in the last ``ACTIVE_FILE_S`` seconds)
with the runtime's one retention owner, ``context.recordings.retention``, and
reports what that owner did (``cleanup`` asks it to enforce the quota now).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from coral_inference.media.retention import RetentionPolicy, RetentionReport, RetentionWorker

if TYPE_CHECKING:
    from coral_inference.metrics.hub import MetricsHub
    from coral_inference.runtime.context import RuntimeContext

logger = logging.getLogger("coral_inference.webapp.monitor")

HISTORY = 720  # samples kept per series (an hour at 5 s)
ACTIVE_FILE_S = 30.0
QUOTA_NAME = "monitoring.disk_quota"
HOST_MEASUREMENT = "coral_host"

# Where accelerators report their load (first readable wins per device).
RKNPU_LOAD_FILES = ("/sys/kernel/debug/rknpu/load", "/proc/rknpu/load")
JETSON_GPU_LOAD_FILES = ("/sys/devices/gpu.0/load", "/sys/devices/platform/gpu.0/load")


def read_npu_load(root: Path = Path("/")) -> dict[str, float]:
    """NPU/GPU load in percent by core, from kernel files; empty when none is readable.

    The RK3588 driver writes ``NPU load:  Core0: 12%, Core1:  0%, Core2:  3%,``;
    Jetson's GPU load file holds per-mille.
    """
    for name in RKNPU_LOAD_FILES:
        text = _read(root / name.lstrip("/"))
        if text:
            cores = re.findall(r"Core(\d+):\s*(\d+)%", text)
            if cores:
                return {f"npu_core{c}": float(v) for c, v in cores}
            single = re.search(r"(\d+)%", text)
            if single:
                return {"npu": float(single.group(1))}
    for path in sorted((root / "sys/class/devfreq").glob("*npu*/load")):
        text = _read(path)
        match = re.match(r"\s*(\d+)@", text or "")  # devfreq: "<busy>@<freq>Hz"
        if match:
            return {"npu": float(match.group(1))}
    for name in JETSON_GPU_LOAD_FILES:
        text = _read(root / name.lstrip("/"))
        if text and text.strip().isdigit():
            return {"gpu": int(text.strip()) / 10.0}
    return {}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


class MonitorService:
    def __init__(
        self,
        context: RuntimeContext,
        pipeline_statuses: Callable[[], list[dict[str, Any]]],
        *,
        metrics_hub: MetricsHub | None = None,
        retention: RetentionWorker | None = None,
        sys_root: Path = Path("/"),
    ):
        cfg = context.config
        self.context = context
        self.enabled = cfg.services.monitoring.enabled
        self.interval_s = cfg.services.monitoring.poll_interval_s
        self.sinks = list(cfg.services.monitoring.sinks)
        self.storage_root = Path(cfg.storage.root)
        self.cleanup_roots = [Path(cfg.storage.recordings), Path(cfg.storage.results)]
        self.policy = RetentionPolicy(
            max_bytes=cfg.services.monitoring.disk_quota_bytes,
            min_free_bytes=cfg.services.monitoring.min_free_bytes,
        )
        self._retention = retention
        self._statuses = pipeline_statuses
        self._metrics_hub = metrics_hub
        self._sys_root = sys_root
        self.host_history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.pipeline_history: dict[str, deque[dict[str, Any]]] = {}
        self.last_sample_at: float | None = None
        self.last_cleanup: dict[str, Any] | None = None
        self.emit_errors = 0
        psutil.cpu_percent(None)  # prime: the first call has no interval to measure over

    @property
    def retention(self) -> RetentionWorker:
        """The one deleter: the runtime's recordings retention (the quota registered on it)."""
        if self._retention is None:
            self._retention = self.context.recordings.retention
            self._retention.register_quota(
                QUOTA_NAME, self.cleanup_roots, self.policy, spare_younger_than_s=ACTIVE_FILE_S
            )
        return self._retention

    @property
    def metrics_hub(self) -> Any:
        if self._metrics_hub is None:
            self._metrics_hub = self.context.metrics
        return self._metrics_hub

    # ------------------------------------------------------------------ sampling

    def host(self) -> dict[str, Any]:
        """CPU, memory, disk, load average and accelerator load, right now."""
        disk_path = self.storage_root if self.storage_root.exists() else Path(".")
        disk = shutil.disk_usage(disk_path)
        memory = psutil.virtual_memory()
        sample: dict[str, Any] = {
            "time": time.time(),
            "cpu_percent": psutil.cpu_percent(None),
            "memory_percent": memory.percent,
            "memory_used_bytes": memory.total - memory.available,
            "memory_total_bytes": memory.total,
            "disk_path": str(disk_path),
            "disk_used_bytes": disk.used,
            "disk_free_bytes": disk.free,
            "disk_total_bytes": disk.total,
            "disk_percent": round(100.0 * disk.used / disk.total, 2) if disk.total else None,
            "load_average_1m": psutil.getloadavg()[0],
            "accelerators": read_npu_load(self._sys_root),
        }
        return sample

    def sample(self) -> dict[str, Any]:
        """One round: host + every pipeline into the history; host figures to the sinks."""
        host = self.host()
        self.host_history.append(host)
        now = host["time"]
        live = set()
        for status in self._statuses():
            pid = status["id"]
            live.add(pid)
            series = self.pipeline_history.setdefault(pid, deque(maxlen=HISTORY))
            series.append(
                {
                    "time": now,
                    "state": status["state"],
                    "fps": status["fps"],
                    "inference_latency_ms": status["inference_latency_ms"],
                    "detections": status.get("detections", 0),
                    "frames": status["frames"],
                }
            )
        for pid in [p for p in self.pipeline_history if p not in live]:
            del self.pipeline_history[pid]
        self._forget_series_of_gone_pipelines(live)
        self.last_sample_at = now
        self._emit(host)
        return host

    def _forget_series_of_gone_pipelines(self, live: set[str]) -> None:
        # A deleted pipeline's fps/latency series would otherwise stay on /metrics with their last values.
        try:
            gone = self.metrics_hub.series_tag_values("pipeline_id") - live
            if gone:
                self.metrics_hub.forget_series("pipeline_id", gone)
        except Exception as exc:  # monitoring goes on; the next round tries again
            logger.warning("stale pipeline series not removed: %s", exc)

    def _emit(self, host: dict[str, Any]) -> None:
        if not self.sinks:
            return
        fields = {
            k: host[k]
            for k in (
                "cpu_percent",
                "memory_percent",
                "memory_used_bytes",
                "disk_free_bytes",
                "disk_used_bytes",
                "load_average_1m",
            )
        }
        if host["disk_percent"] is not None:
            fields["disk_percent"] = host["disk_percent"]
        fields.update(
            {f"{name}_load_percent": value for name, value in host["accelerators"].items()}
        )
        try:
            self.metrics_hub.emit(HOST_MEASUREMENT, fields, {}, self.sinks)
        except Exception as exc:  # a misconfigured sink must not stop monitoring
            self.emit_errors += 1
            logger.warning("host metrics not emitted: %s", exc)

    def history(self, pipeline_id: str | None = None, limit: int = HISTORY) -> dict[str, Any]:
        if pipeline_id is not None:
            return {
                "pipeline_id": pipeline_id,
                "samples": list(self.pipeline_history.get(pipeline_id, ()))[-limit:],
            }
        return {
            "host": list(self.host_history)[-limit:],
            "pipelines": {pid: list(s)[-limit:] for pid, s in self.pipeline_history.items()},
        }

    def sink_stats(self) -> dict[str, Any]:
        return {"sinks": self.metrics_hub.stats(), "host_emit_errors": self.emit_errors}

    # ------------------------------------------------------------------ cleanup

    def cleanup(self, now: float | None = None) -> dict[str, Any]:
        """Ask the retention owner to enforce the disk quota now; report what it deleted."""
        report = self.retention.run_quota(QUOTA_NAME, now=now)
        return self._report(report, time.time() if now is None else now)

    def disk_report(self) -> dict[str, Any] | None:
        """The last quota enforcement (by the retention thread or ``cleanup``), if any."""
        report = self.retention.last_quota_reports.get(QUOTA_NAME)
        return self._report(report, time.time()) if report is not None else None

    def _report(self, report: RetentionReport | None, now: float) -> dict[str, Any]:
        result: dict[str, Any] = {
            "time": now,
            "deleted": [str(path) for path in report.deleted] if report else [],
            "freed_bytes": report.freed_bytes if report else 0,
            "errors": list(report.errors) if report else [],
            "remaining_bytes": report.remaining_bytes if report else 0,
            "quota_bytes": self.policy.max_bytes,
            "min_free_bytes": self.policy.min_free_bytes,
        }
        self.last_cleanup = result
        return result

    # ------------------------------------------------------------------ background

    async def run(self) -> None:
        """Sample and clean up until cancelled; one failing round is logged, not fatal."""
        if self.policy.active:
            _ = self.retention  # registers the quota with the retention thread
        while True:
            try:
                await asyncio.to_thread(self.sample)
            except Exception:
                logger.exception("monitoring round failed")
            await asyncio.sleep(self.interval_s)
