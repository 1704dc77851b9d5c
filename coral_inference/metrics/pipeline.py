"""Per-pipeline metrics: fps, end-to-end and inference latency, dropped frames, detections per class.

The pipeline runner calls ``PipelineMetrics.observe`` from its result callback
for every frame (single- or multi-source shapes). Values are aggregated per
source and emitted once per ``interval_s``, as measurement ``coral_pipeline``
(tags ``pipeline_id``, ``source``) and ``coral_detections`` (plus
``class_name``). Observing never raises into the pipeline.

Two latencies, two names: ``e2e_latency_ms`` is capture to result (the frame's
timestamp to the moment it is observed), ``inference_latency_ms`` is the workflow
run alone (the runner measures it from the frame entering the workflow).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

logger = logging.getLogger("coral_inference.metrics.pipeline")

PIPELINE_MEASUREMENT = "coral_pipeline"
DETECTIONS_MEASUREMENT = "coral_detections"


@dataclass
class _SourceWindow:
    frames: int = 0
    started: float | None = None
    latency_sum: float = 0.0
    latency_max: float = 0.0
    latency_n: int = 0
    inference_sum: float = 0.0
    inference_n: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    # running totals across windows
    frames_total: int = 0
    dropped_total: int = 0
    last_frame_id: int | None = None
    class_totals: dict[str, int] = field(default_factory=dict)


def class_counts(predictions: Any) -> dict[str, int]:
    """Detections per class name in a workflow result (any ``sv.Detections`` among its values)."""
    counts: dict[str, int] = {}
    values: Iterable[Any] = predictions.values() if isinstance(predictions, Mapping) else ()
    for value in values:
        data = getattr(value, "data", None)
        if not hasattr(value, "xyxy") or not isinstance(data, Mapping) or len(value) == 0:
            continue
        names = data.get("class_name")
        if names is None:
            names = np.asarray(getattr(value, "class_id", []), dtype=object).astype(str)
        unique, n = np.unique(np.asarray(names).astype(str), return_counts=True)
        for name, count in zip(unique.tolist(), n.tolist()):
            counts[name] = counts.get(name, 0) + count
    return counts


def _seconds(ts: Any) -> float | None:
    if isinstance(ts, datetime):
        return ts.timestamp()
    if isinstance(ts, (int, float)):
        return float(ts)
    return None


class PipelineMetrics:
    """Aggregates frames of one pipeline and emits its metrics every ``interval_s``."""

    def __init__(
        self,
        hub: Any,
        pipeline_id: str,
        *,
        sinks: list[str] | None = None,
        interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.hub = hub
        self._wall_clock = wall_clock
        self.pipeline_id = str(pipeline_id)
        self.sinks = sinks
        self.interval_s = interval_s
        self.errors = 0
        self._windows: dict[str, _SourceWindow] = {}
        self._lock = threading.Lock()

    def observe(
        self,
        predictions: Any = None,
        video_frame: Any = None,
        *,
        inference_latency_s: float | None = None,
        now: float | None = None,
    ) -> None:
        """One pipeline result: ``(dict, VideoFrame)`` or lists of them (multi-source)."""
        try:
            if isinstance(video_frame, list):
                preds = (
                    predictions
                    if isinstance(predictions, list)
                    else [predictions] * len(video_frame)
                )
                for p, f in zip(preds, video_frame):
                    if f is not None:
                        self._observe_one(p, f, inference_latency_s, now)
            else:
                self._observe_one(predictions, video_frame, inference_latency_s, now)
        except Exception as exc:  # metrics must never break a pipeline
            self.errors += 1
            logger.debug("pipeline %s metrics: %s", self.pipeline_id, exc)

    def _observe_one(
        self, predictions: Any, frame: Any, inference_latency_s: float | None, now: float | None
    ) -> None:
        mono = time.monotonic() if now is None else now
        source = str(getattr(frame, "source_id", None) if frame is not None else None)
        frame_id = getattr(frame, "frame_id", None)
        stamp = _seconds(getattr(frame, "frame_timestamp", None))
        counts = class_counts(predictions)
        with self._lock:
            w = self._windows.setdefault(source, _SourceWindow())
            if w.started is None:
                w.started = mono
            w.frames += 1
            w.frames_total += 1
            if frame_id is not None:
                if w.last_frame_id is not None and frame_id > w.last_frame_id + 1:
                    w.dropped_total += frame_id - w.last_frame_id - 1
                w.last_frame_id = frame_id
            if stamp is not None:
                latency = max(0.0, self._wall_clock() - stamp)  # capture -> result: end to end
                w.latency_sum += latency
                w.latency_max = max(w.latency_max, latency)
                w.latency_n += 1
            if inference_latency_s is not None:
                w.inference_sum += inference_latency_s
                w.inference_n += 1
            for name, n in counts.items():
                w.classes[name] = w.classes.get(name, 0) + n
                w.class_totals[name] = w.class_totals.get(name, 0) + n
            due = mono - w.started >= self.interval_s
        if due:
            self._emit(source, mono)

    def flush(self, now: float | None = None) -> None:
        """Emit every source's partial window (e.g. when the pipeline stops)."""
        mono = time.monotonic() if now is None else now
        for source in list(self._windows):
            self._emit(source, mono)

    def _emit(self, source: str, mono: float) -> None:
        with self._lock:
            w = self._windows[source]
            if not w.frames or w.started is None:
                return
            elapsed = max(mono - w.started, 1e-9)
            fields: dict[str, float] = {
                "fps": w.frames / elapsed if elapsed >= self.interval_s * 0.5 else 0.0,
                "frames_total": w.frames_total,
                "dropped_frames_total": w.dropped_total,
                "detections_per_frame": sum(w.classes.values()) / w.frames,
            }
            if fields["fps"] == 0.0:
                fields.pop("fps")  # too short a window to say
            if w.latency_n:
                fields["e2e_latency_ms"] = 1000.0 * w.latency_sum / w.latency_n
                fields["e2e_latency_max_ms"] = 1000.0 * w.latency_max
            if w.inference_n:
                fields["inference_latency_ms"] = 1000.0 * w.inference_sum / w.inference_n
            per_class = {
                name: (w.classes.get(name, 0) / w.frames, total)
                for name, total in w.class_totals.items()
            }
            w.frames, w.started, w.latency_sum, w.latency_max, w.latency_n = 0, mono, 0.0, 0.0, 0
            w.inference_sum, w.inference_n, w.classes = 0.0, 0, {}
        tags = {"pipeline_id": self.pipeline_id, "source": source}
        counters = {"frames_total": "counter", "dropped_frames_total": "counter"}
        try:
            self.hub.emit(PIPELINE_MEASUREMENT, fields, tags, self.sinks, types=counters)
            for name, (per_frame, total) in per_class.items():
                self.hub.emit(
                    DETECTIONS_MEASUREMENT,
                    {"per_frame": per_frame, "total": total},
                    {**tags, "class_name": name},
                    self.sinks,
                    types={"total": "counter"},
                )
        except Exception as exc:
            self.errors += 1
            logger.warning("pipeline %s metrics not emitted: %s", self.pipeline_id, exc)
