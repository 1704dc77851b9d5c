"""Coral inside a stream-manager pipeline process of Roboflow's inference server.

The stream manager (``streamvision.stream_manager``) runs each pipeline in a
``multiprocessing`` child (``PipelineManagerProcess``) that keeps the pipeline id
the manager returns from ``initialise`` as its ``_pipeline_id``. The first time a
Coral step initialises in such a process, :func:`attach_stream_manager_worker`

* declares that id as the process's pipeline identity, so recordings folders,
  metric labels and preview channels are the pipeline's own
  (:func:`coral_inference.runtime.process.pipeline_key`);
* installs the exit shutdown: the manager stops a pipeline with its ``terminate``
  command (or SIGTERM when the server stops), the worker drains the pipeline and
  returns from ``run``, and Coral then finalises recordings and flushes metrics;
* starts the per-pipeline fps/latency series (:class:`FrameObserver`, fed by
  Coral's sink blocks) and the Prometheus export to the server's one scrape.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from types import SimpleNamespace
from typing import Any

from coral_inference.metrics import PipelineMetrics
from coral_inference.runtime.context import ContextKey, RuntimeContext
from coral_inference.runtime.process import (
    current_pipeline_identity,
    install_exit_shutdown,
    set_pipeline_identity,
)
from coral_inference.server.metrics_export import ensure_worker_export

logger = logging.getLogger("coral_inference.server.worker")

STREAM_MANAGER_PACKAGES = ("streamvision", "inference")
OBSERVER: ContextKey[FrameObserver] = ContextKey("coral.server.frame_observer")

_lock = threading.Lock()


def stream_manager_pipeline_id() -> str | None:
    """The stream manager's pipeline id when this process is one of its pipeline workers."""
    if multiprocessing.parent_process() is None:
        return None
    process = multiprocessing.current_process()
    pipeline_id = getattr(process, "_pipeline_id", None)
    package = type(process).__module__.split(".")[0]
    if isinstance(pipeline_id, str) and pipeline_id and package in STREAM_MANAGER_PACKAGES:
        return pipeline_id
    return None


def attach_stream_manager_worker(context: RuntimeContext) -> bool:
    """Identity, exit shutdown and metrics export for a stream-manager worker; once per process.

    Returns True when this process is a stream-manager worker. Does nothing where a
    pipeline identity is already set (Coral's own workers set theirs) or outside one.
    """
    pipeline_id = stream_manager_pipeline_id()
    if pipeline_id is None:
        return False
    with _lock:
        identity = current_pipeline_identity()
        if identity is None:
            set_pipeline_identity(pipeline_id)
            install_exit_shutdown()
            logger.info("Coral serves stream-manager pipeline %s", pipeline_id)

    ensure_worker_export(context)
    return True


class FrameObserver:
    """Per-pipeline fps, latency and dropped-frame series from the frames Coral's blocks see.

    The stream manager owns the pipeline's result callback, so the frames come from
    Coral's sink blocks instead; each ``(source, frame number)`` counts once however
    many Coral blocks the workflow holds.
    """

    def __init__(self, context: RuntimeContext, pipeline_id: str):

        self._metrics = PipelineMetrics(context.metrics, pipeline_id)
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def observe(self, image: Any) -> None:
        metadata = getattr(image, "video_metadata", None)
        if metadata is None:
            return
        source = str(getattr(metadata, "video_identifier", "") or "0")
        frame_number = int(getattr(metadata, "frame_number", 0) or 0)
        with self._lock:
            if self._last.get(source) == frame_number:
                return
            self._last[source] = frame_number
        frame = SimpleNamespace(
            source_id=source,
            frame_id=frame_number,
            frame_timestamp=getattr(metadata, "frame_timestamp", None),
        )
        self._metrics.observe(None, frame)

    def close(self) -> None:
        self._metrics.flush()


def observe_frame(context: RuntimeContext, image: Any) -> None:
    """Called by Coral's sink blocks for every frame; counts it in a stream-manager worker only."""
    identity = current_pipeline_identity()
    if identity is None or stream_manager_pipeline_id() is None:
        return
    config = getattr(context, "config", None)
    if config is None or not config.metrics.pipeline_metrics:
        return
    try:
        observer = context.shared(OBSERVER, lambda: FrameObserver(context, identity.pipeline_id))
        observer.observe(image)
    except Exception as exc:  # noqa: BLE001 - metrics never break a pipeline
        logger.debug("frame observer: %s", exc)
