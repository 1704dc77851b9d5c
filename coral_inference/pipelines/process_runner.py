"""``WorkerRunner``: the ``PipelineRunner`` interface, served by a supervised worker process.

The web app's ``PipelineService`` drives pipelines through the runner interface
(``start``, ``pause``, ``resume``, ``terminate``, ``join``, ``status``,
``latest_result``, ``state``); this class implements it over a ``Supervisor``
worker, so the service is the same whether a pipeline runs in-process or not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from coral_inference.media.frame_slot import FrameHeader
from coral_inference.pipelines.runner import PipelineStartError, PipelineStateError, parse_source
from coral_inference.pipelines.status import PipelineState
from coral_inference.pipelines.supervisor import Supervisor, WorkerCommandError, WorkerHandle
from coral_inference.pipelines.worker import WorkerSpec
from coral_inference.runtime.context import RuntimeContext

COMMAND_TIMEOUT_S = 10.0


class NoFrameError(LookupError):
    """The pipeline has not produced a preview frame yet."""


@dataclass(frozen=True)
class WorkerResult:
    """The latest result a worker pushed: JSON-ready outputs, the frame from shared memory."""

    frame_id: int
    frame_timestamp: datetime
    outputs: dict[str, Any]
    _handle: WorkerHandle

    def image(self, output: str | None = None) -> np.ndarray:
        # The worker writes the pipeline's preview output into the slot.
        latest = self._handle.latest_frame()
        if latest is None:
            raise NoFrameError(f"pipeline {self._handle.pipeline_id} has no preview frame yet")
        return latest[0]


class WorkerFrames:
    """The preview of one worker as the stream hub reads it (see ``StreamHub.attach_source``)."""

    def __init__(self, handle: WorkerHandle):
        self._handle = handle

    def header(self) -> FrameHeader | None:
        return self._handle.frame_header()

    def read(self) -> tuple[np.ndarray, FrameHeader] | None:
        return self._handle.latest_frame()


class WorkerRunner:
    """One pipeline in its own worker process (see ``coral_inference.pipelines.supervisor``)."""

    def __init__(
        self,
        context: RuntimeContext,  # its config is copied into the worker spec
        workflow: dict[str, Any],
        source: str | int,
        *,
        supervisor: Supervisor,
        pipeline_id: str,
        name: str | None = None,
        max_fps: float | None = None,
        workflows_parameters: dict[str, Any] | None = None,
        preview_output: str | None = None,
        npu_core_mask: str | None = None,
        cpu_affinity: list[int] | None = None,
        on_result: Any = None,  # results travel over the worker's pipe, not through a callback
        start_timeout_s: float | None = None,
        start_paused: bool = False,
    ):
        if not isinstance(workflow, dict) or "steps" not in workflow:
            raise ValueError(
                "workflow must be a workflow definition "
                "(a dict with 'version', 'inputs', 'steps', 'outputs')"
            )
        self.pipeline_id = pipeline_id
        self.supervisor = supervisor
        self.start_timeout_s = start_timeout_s or supervisor.settings.start_timeout_s
        self.spec = WorkerSpec(
            pipeline_id=pipeline_id,
            name=name,
            config=context.config.model_dump(mode="json"),
            workflow=workflow,
            source=parse_source(source),
            max_fps=max_fps,
            parameters=dict(workflows_parameters or {}),
            preview_output=preview_output,
            npu_core_mask=npu_core_mask,
            cpu_affinity=tuple(cpu_affinity) if cpu_affinity else None,
            start_paused=start_paused,
        )
        self.handle: WorkerHandle | None = None
        self._terminated_early = False
        self._launch_lock = threading.Lock()  # a terminate during start never misses the worker

    @property
    def state(self) -> PipelineState:
        if self.handle is None:
            return PipelineState.terminated if self._terminated_early else PipelineState.starting
        return self.handle.state

    def frames(self) -> WorkerFrames | None:
        return WorkerFrames(self.handle) if self.handle is not None else None

    def channels(self) -> dict[str, str]:
        """Preview channels its blocks publish: channel -> shared-memory slot (read-only for us)."""
        handle = self.handle
        if handle is None:
            return {}
        with self.supervisor.lock:
            return dict(handle.channels)

    def start(self) -> None:
        with self._launch_lock:
            if self._terminated_early:
                raise PipelineStartError(
                    f"pipeline {self.pipeline_id} was terminated before it started"
                )
            self.handle = self.supervisor.launch(self.spec)
        outcome, message = self.handle.wait_started(self.start_timeout_s)
        if outcome == "failed":
            raise PipelineStartError(
                f"pipeline {self.pipeline_id} did not start: {message}"
            ) from RuntimeError(message)

    def pause(self) -> None:
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def _command(self, name: str) -> None:
        handle = self.handle
        if handle is None:
            raise PipelineStateError(f"pipeline {self.pipeline_id} is starting")
        try:
            handle.command(name, COMMAND_TIMEOUT_S)
        except WorkerCommandError as exc:
            raise PipelineStateError(str(exc)) from None

    def terminate(self) -> None:
        with self._launch_lock:
            handle = self.handle
            if handle is None:
                self._terminated_early = True
                return
        self.supervisor.stop(handle)

    def join(self, timeout: float | None = None) -> bool:
        handle = self.handle
        return True if handle is None else handle.ended.wait(timeout)

    def forget(self) -> None:
        if self.handle is not None:
            self.supervisor.forget(self.handle)

    def status(self) -> dict[str, Any]:
        if self.handle is None:
            return {
                "id": self.pipeline_id,
                "state": self.state.value,
                "frames": 0,
                "fps": 0.0,
                "inference_latency_ms": None,
                "error": None,
                "isolation": "process",
            }
        return self.handle.describe()

    def latest_result(self) -> WorkerResult | None:
        handle = self.handle
        if handle is None or handle.result is None:
            return None
        result = handle.result
        return WorkerResult(
            frame_id=int(result["frame_id"]),
            frame_timestamp=datetime.fromisoformat(result["frame_timestamp"]),
            outputs=result["outputs"],
            _handle=handle,
        )
