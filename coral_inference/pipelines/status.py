"""The one typed shape of a pipeline's status: states, source kinds, exits, resources.

``PipelineRunner.status()``, the worker supervisor, the persisted record and the
web API's schemas all build on these models, so a state or a field exists in one
place. The models forbid unknown fields; ``example_status()`` builds the OpenAPI
example from a real object, so the documentation cannot drift from the API.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PipelineState(str, enum.Enum):
    """Where a pipeline is in its life (what it *is*, not what the operator wants)."""

    created = "created"
    starting = "starting"
    running = "running"
    paused = "paused"
    reconnecting = "reconnecting"  # its source is down; retried with backoff while wanted running
    restarting = "restarting"  # its worker ended and the restart policy brings it back
    finished = "finished"  # the source ended (a video file played to its end)
    failed = "failed"
    terminated = "terminated"
    stopped = "stopped"  # no worker: the server stopped it, or it was never restored

    @property
    def active(self) -> bool:
        """Counts against ``services.pipelines.max_pipelines`` (a process or threads exist)."""
        return self in ACTIVE_STATES

    @property
    def ended(self) -> bool:
        return self in (PipelineState.finished, PipelineState.failed, PipelineState.terminated)


ACTIVE_STATES = frozenset(
    {
        PipelineState.starting,
        PipelineState.running,
        PipelineState.paused,
        PipelineState.reconnecting,
        PipelineState.restarting,
    }
)


class DesiredState(str, enum.Enum):
    """What the operator asked for; ``running``/``paused`` pipelines come back after a restart."""

    running = "running"
    paused = "paused"
    terminated = "terminated"
    finished = "finished"  # a file that played to its end is not started again


class SourceKind(str, enum.Enum):
    file = "file"  # a local video file
    download = "download"  # an http(s) video downloaded first
    stream = "stream"  # rtsp/rtmp/udp/tcp/srt, or http(s) read live
    camera = "camera"  # a camera index


RestartPolicy = Literal["never", "on-failure", "always"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceStatus(StrictModel):
    reference: str | int = Field(..., examples=["videos/entrance.mp4"])
    state: str | None = Field(
        default=None, description="inference's stream state", examples=["RUNNING"]
    )


class ExitInfo(StrictModel):
    """How a pipeline's worker process last ended."""

    code: int | None = Field(
        default=None, description="Exit code (None when a signal ended it).", examples=[None]
    )
    signal: str | None = Field(
        default=None, description="Signal that ended it.", examples=["SIGSEGV"]
    )
    reason: str = Field(..., examples=["worker killed by SIGSEGV"])
    at: str = Field(
        ..., description="UTC time of the exit, ISO 8601.", examples=["2026-11-22T10:00:00+00:00"]
    )
    log_tail: list[str] = Field(default_factory=list, description="The worker's last log lines.")


class ResourceUsage(StrictModel):
    """The worker process's own figures (sampled by the supervisor)."""

    pid: int = Field(..., examples=[4242])
    rss_bytes: int = Field(..., examples=[183_500_800])
    cpu_percent: float = Field(..., description="100 = one core busy.", examples=[54.0])
    threads: int = Field(..., examples=[19])
    open_files: int = Field(..., description="Open file descriptors.", examples=[41])


class Placement(StrictModel):
    """Where a worker runs: NPU cores for its RKNN sessions, CPU cores for its threads."""

    npu_core_mask: str | None = Field(
        default=None, description="RKNN core mask of the worker's sessions.", examples=["1"]
    )
    cpu_affinity: list[int] | None = Field(
        default=None, description="CPU cores the worker may run on.", examples=[[2, 3]]
    )


class RunnerStatus(StrictModel):
    """What a running workflow reports about itself (``PipelineRunner.status()``)."""

    id: str = Field(..., examples=["3f2a9c1b7d4e"])
    state: PipelineState = Field(..., examples=["running"])
    frames: int = Field(default=0, description="Frames delivered to the sink.", examples=[1200])
    fps: float = Field(
        default=0.0, description="Frames per second over the last seconds.", examples=[14.9]
    )
    inference_latency_ms: float | None = Field(
        default=None,
        description=(
            "Mean time from a frame entering the workflow to its result, over the last seconds "
            "(the metrics' inference_latency_ms; capture to result is their e2e_latency_ms)."
        ),
        examples=[38.2],
    )
    dropped_frames: int = 0
    detections: int = Field(default=0, description="Detections in the latest frame.", examples=[3])
    detections_total: int = 0
    callback_errors: int = 0
    error: str | None = Field(default=None, examples=[None])
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    last_frame_id: int | None = None
    sources: list[SourceStatus] = Field(default_factory=list)


class PipelineStatus(RunnerStatus):
    """A pipeline as the API shows it: the runner's figures, the record and its supervision."""

    name: str = Field(..., examples=["gate camera"])
    workflow_file: str | None = Field(default=None, examples=["workflows/detect_and_count.json"])
    source: str = Field(
        ..., description="Credentials redacted.", examples=["rtsp://***@192.168.1.64/stream1"]
    )
    source_kind: SourceKind = Field(..., examples=["stream"])
    max_fps: float | None = None
    desired_state: DesiredState = Field(..., examples=["running"])
    preview_channel: str = Field(..., examples=["3f2a9c1b7d4e"])
    isolation: Literal["process", "thread"] = Field(
        default="thread",
        description="'process': the pipeline runs in its own supervised worker process.",
    )
    restarts: int = Field(
        default=0, description="Times the supervisor restarted the worker.", examples=[1]
    )
    last_exit: ExitInfo | None = None
    resources: ResourceUsage | None = None
    placement: Placement | None = None


def example_status() -> PipelineStatus:
    """A real, validated status, used as the OpenAPI example."""
    return PipelineStatus(
        id="3f2a9c1b7d4e",
        name="gate camera",
        state=PipelineState.running,
        frames=1200,
        fps=14.9,
        inference_latency_ms=38.2,
        detections=3,
        detections_total=5210,
        error=None,
        created_at="2026-11-22T09:58:00+00:00",
        started_at="2026-11-22T09:58:01+00:00",
        last_frame_id=1200,
        sources=[SourceStatus(reference="rtsp://***@192.168.1.64/stream1", state="RUNNING")],
        source="rtsp://***@192.168.1.64/stream1",
        source_kind=SourceKind.stream,
        max_fps=15,
        desired_state=DesiredState.running,
        preview_channel="3f2a9c1b7d4e",
        isolation="process",
        restarts=1,
        last_exit=ExitInfo(
            code=None,
            signal="SIGSEGV",
            reason="worker killed by SIGSEGV",
            at="2026-11-22T09:57:59+00:00",
            log_tail=["Fatal Python error: Segmentation fault"],
        ),
        resources=ResourceUsage(
            pid=4242, rss_bytes=183_500_800, cpu_percent=54.0, threads=19, open_files=41
        ),
        placement=Placement(npu_core_mask="1", cpu_affinity=None),
    )
