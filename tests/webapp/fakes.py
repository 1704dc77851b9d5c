"""A stand-in for ``PipelineRunner`` so the web plane can be tested without inference.

It honours the runner's contract (states, ``PipelineStartError`` on a workflow
that cannot start, ``PipelineStateError`` on a control call the state forbids,
``latest_result``) and hands one result to ``on_result`` when started.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from coral_inference.pipelines.runner import (
    PipelineResult,
    PipelineStartError,
    PipelineState,
    PipelineStateError,
    redact_source,
)


class FakeRunner:
    instances: list[FakeRunner] = []

    def __init__(
        self,
        context: Any,
        workflow: dict,
        source: Any,
        *,
        pipeline_id: str,
        max_fps=None,
        workflows_parameters=None,
        on_result=None,
        **_: Any,
    ):
        self.workflow, self.source, self.pipeline_id = workflow, source, pipeline_id
        self.max_fps, self.parameters, self.on_result = max_fps, workflows_parameters, on_result
        self._state = PipelineState.created
        self._result: PipelineResult | None = None
        FakeRunner.instances.append(self)

    @property
    def state(self) -> PipelineState:
        return self._state

    def start(self) -> None:
        if any(step.get("type") == "fail/at_start@v1" for step in self.workflow["steps"]):
            self._state = PipelineState.failed
            raise PipelineStartError(f"pipeline {self.pipeline_id} did not start") from ValueError(
                "unknown block fail/at_start@v1"
            )
        self._state = PipelineState.running
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[10:20, 10:20] = 255
        self._result = PipelineResult(
            frame_id=1,
            frame_timestamp=datetime(2026, 1, 1),
            frame=frame,
            outputs={"count": np.int64(2)},
        )
        if self.on_result is not None:
            self.on_result(self._result)

    def pause(self) -> None:
        if self._state is not PipelineState.running:
            raise PipelineStateError(
                f"pipeline {self.pipeline_id} is {self._state.value}, not running"
            )
        self._state = PipelineState.paused

    def resume(self) -> None:
        if self._state is not PipelineState.paused:
            raise PipelineStateError(
                f"pipeline {self.pipeline_id} is {self._state.value}, not paused"
            )
        self._state = PipelineState.running

    def terminate(self) -> None:
        if self._state.active:
            self._state = PipelineState.terminated

    def finish(self) -> None:
        self._state = PipelineState.finished

    def join(self, timeout=None) -> bool:
        return not self._state.active

    def latest_result(self) -> PipelineResult | None:
        return self._result

    def status(self) -> dict[str, Any]:
        return {
            "id": self.pipeline_id,
            "state": self._state.value,
            "frames": 1 if self._result else 0,
            "fps": 0.0,
            "inference_latency_ms": None,
            "detections": 0,
            "error": None,
            "sources": [{"reference": redact_source(self.source), "state": None}],
        }


def workflow(kind: str = "ok") -> dict:
    step = {"type": "roboflow_core/image_blur@v1", "name": "blur", "image": "$inputs.image"}
    if kind == "fail":
        step = {"type": "fail/at_start@v1", "name": "x"}
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [step],
        "outputs": [{"type": "JsonField", "name": "preview", "selector": "$steps.blur.image"}],
    }
