"""Per-stage latency and throughput of a ``Detector`` (what ``coral-runtime models bench`` prints).

Stages are the detector's own: preprocess (resize, normalise, layout), inference
(the backend session) and decode (decoder, NMS, boxes back to the frame).
Sequential runs give the latency; a second pass over a batch measures the
throughput a session pool reaches when several frames are in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from coral_inference.models.detector import Detector, StageTimes


@dataclass
class StageStats:
    mean_ms: float
    p50_ms: float
    p95_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> StageStats:
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        return cls(float(ms.mean()), float(np.percentile(ms, 50)), float(np.percentile(ms, 95)))


@dataclass
class BenchResult:
    model: str
    backend: str
    frame: tuple[int, int]  # width, height
    frames: int
    preprocess: StageStats
    inference: StageStats
    decode: StageStats
    total: StageStats
    sequential_fps: float
    concurrent_fps: float
    concurrency: int
    candidates: float  # mean boxes reaching NMS
    detections: float  # mean boxes returned
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_detector(
    detector: Detector,
    frame: np.ndarray,
    *,
    frames: int = 50,
    warmup: int = 5,
    backend: str = "",
    confidence: float = 0.25,
    iou: float = 0.45,
    progress: Callable[[int], None] | None = None,
) -> BenchResult:
    """Time ``frames`` sequential detections of ``frame`` (after ``warmup``), then a concurrent batch."""
    for _ in range(warmup):
        detector.detect(frame, confidence=confidence, iou=iou)
    times: list[StageTimes] = []
    detections = []
    start = time.perf_counter()
    for _ in range(frames):
        result, stage = detector.detect_timed(frame, confidence=confidence, iou=iou)
        times.append(stage)
        detections.append(len(result))
        if progress is not None:
            progress(1)
    sequential = time.perf_counter() - start
    concurrency = int(getattr(detector.session, "concurrency", 1) or 1)
    concurrent_fps = frames / sequential
    if concurrency > 1:
        batch = [frame] * frames
        start = time.perf_counter()
        detector.detect_batch(batch, confidence=confidence, iou=iou)
        concurrent_fps = frames / (time.perf_counter() - start)
    return BenchResult(
        model=detector.package.name,
        backend=backend,
        frame=(int(frame.shape[1]), int(frame.shape[0])),
        frames=frames,
        preprocess=StageStats.of([t.preprocess for t in times]),
        inference=StageStats.of([t.inference for t in times]),
        decode=StageStats.of([t.decode for t in times]),
        total=StageStats.of([t.total for t in times]),
        sequential_fps=frames / sequential,
        concurrent_fps=concurrent_fps,
        concurrency=concurrency,
        candidates=float(np.mean([t.candidates for t in times])),
        detections=float(np.mean(detections)),
    )
