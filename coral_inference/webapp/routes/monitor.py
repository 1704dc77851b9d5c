"""/api/v1/metrics and /api/v1/maintenance: host figures, chart history, sinks, cleanup."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query

from coral_inference.webapp.deps import monitor_service
from coral_inference.webapp.schemas import CleanupReport, HostSample
from coral_inference.webapp.services import MonitorService

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics/host",
    response_model=HostSample,
    summary="Host CPU, memory, disk and accelerator load now",
)
async def host_metrics(monitor: MonitorService = Depends(monitor_service)) -> dict[str, Any]:
    return await asyncio.to_thread(monitor.host)


@router.get("/metrics/history", summary="Recent samples for charts (host and pipelines)")
async def metrics_history(
    pipeline_id: str | None = Query(
        None, max_length=64, description="Only this pipeline's series."
    ),
    limit: int = Query(360, ge=1, le=720, description="Most recent samples per series."),
    monitor: MonitorService = Depends(monitor_service),
) -> dict[str, Any]:
    return monitor.history(pipeline_id, limit)


@router.get("/metrics/sinks", summary="Queued, sent, dropped and spooled points per metric sink")
async def metric_sinks(monitor: MonitorService = Depends(monitor_service)) -> dict[str, Any]:
    return monitor.sink_stats()


@router.post(
    "/maintenance/cleanup", response_model=CleanupReport, summary="Enforce the disk quota now"
)
async def cleanup(monitor: MonitorService = Depends(monitor_service)) -> dict[str, Any]:
    """Deletes the oldest recordings and results beyond services.monitoring.disk_quota_bytes / min_free_bytes."""
    return await asyncio.to_thread(monitor.cleanup)
