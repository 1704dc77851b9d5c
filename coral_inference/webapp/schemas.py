"""Request and response bodies of the HTTP API, with the examples OpenAPI shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coral_inference.pipelines.status import PipelineStatus as _PipelineStatus
from coral_inference.pipelines.status import example_status


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    code: str = Field(
        ..., description="Stable machine-readable error code.", examples=["pipeline_not_found"]
    )
    message: str = Field(
        ..., description="What went wrong and what to do.", examples=["no pipeline with id 'x'"]
    )
    details: Any | None = Field(None, description="Validation details, where there are any.")


class PipelineStatus(_PipelineStatus):
    """A pipeline's status: the one model the runner, the supervisor and the record share."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [example_status().model_dump(mode="json")]}
    )


class PipelineResults(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pipeline_id": "3f2a9c1b7d4e",
                    "frame_id": 42,
                    "frame_timestamp": "2026-11-22T10:00:00",
                    "outputs": {
                        "count": 2,
                        "predictions": [
                            {
                                "class_name": "person",
                                "class_id": 0,
                                "confidence": 0.91,
                                "xyxy": [10.0, 20.0, 80.0, 200.0],
                            }
                        ],
                    },
                }
            ]
        }
    )

    pipeline_id: str
    frame_id: int
    frame_timestamp: str
    outputs: dict[str, Any]


class WorkflowFile(BaseModel):
    path: str = Field(..., examples=["workflows/detect_and_count.json"])
    steps: int = Field(..., examples=[4])
    inputs: list[str | None] = Field(default_factory=list, examples=[["image", "confidence"]])


class SessionDescription(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "offer", "sdp": "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\n..."}]
        }
    )

    sdp: str = Field(..., min_length=1, max_length=100_000, description="The SDP text.")
    type: Literal["offer", "answer"] = Field(
        "offer", description="'offer' from a viewer; the reply is an 'answer'."
    )


class Channel(Body):
    name: str = Field(..., examples=["3f2a9c1b7d4e"])
    viewers: int = Field(0, examples=[1])
    fps: float = Field(0.0, examples=[15.0])
    last_frame_time: str | None = Field(None, examples=["2026-11-22T10:00:00+00:00"])


class Recording(BaseModel):
    path: str = Field(
        ...,
        description="Relative to storage.recordings; use it in /api/v1/recordings/{path}.",
        examples=["front_door/20261122T100000Z_000.mp4"],
    )
    source: str | None = Field(None, examples=["front_door"])
    size_bytes: int = Field(..., examples=[1048576])
    modified_at: str = Field(..., examples=["2026-11-22T10:01:00+00:00"])
    duration_s: float | None = Field(None, examples=[60.0])


class HostSample(Body):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "time": 1795000000.0,
                    "cpu_percent": 23.5,
                    "memory_percent": 41.0,
                    "disk_percent": 62.3,
                    "disk_free_bytes": 21474836480,
                    "load_average_1m": 0.8,
                    "accelerators": {"npu_core0": 35.0},
                }
            ]
        },
    )

    time: float
    cpu_percent: float
    memory_percent: float
    disk_percent: float | None = None
    accelerators: dict[str, float] = Field(default_factory=dict)


class CleanupReport(Body):
    deleted: list[str] = Field(
        default_factory=list, examples=[["var/coral/recordings/cam/old.mp4"]]
    )
    freed_bytes: int = Field(0, examples=[52428800])
    remaining_bytes: int = Field(0, examples=[1073741824])
    errors: list[str] = Field(default_factory=list)


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"
    uptime_s: float = Field(..., examples=[3600.0])


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "not_ready",
                    "failing": ["monitor"],
                    "checks": {
                        "database": {"ok": True, "detail": "var/coral/pipelines.sqlite3 (wal)"},
                        "monitor": {"ok": False, "detail": "monitoring task is not running"},
                    },
                }
            ]
        }
    )

    status: Literal["ready", "degraded", "not_ready"] = Field(
        ...,
        description="'degraded': ready, but a check names a problem (e.g. a camera reconnecting).",
    )
    failing: list[str]
    degraded: list[str] = Field(default_factory=list, examples=[["pipelines"]])
    checks: dict[str, dict[str, Any]]


class SessionRequest(BaseModel):
    api_key: str = Field(
        ..., min_length=1, max_length=512, examples=["k3y-from-coral-runtime-web-hash-key"]
    )


class SessionOpened(BaseModel):
    ok: bool = True
    cookie: str = Field(..., examples=["coral_session"])
