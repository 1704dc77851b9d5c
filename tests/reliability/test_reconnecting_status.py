"""Issue 13.2, fast: how a runner reports a live source that inference is reopening.

inference reopens a lost stream as RESTARTING -> INITIALISING -> ERROR, over and over while
the camera stays down. Each of those, after frames came, is ``reconnecting`` with the one
generic error (not ``running`` with no error, which let the supervisor kill the worker as
hung); before the first frame INITIALISING is just the source opening. The served version
with real cameras is ``test_rtsp_outages.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from coral_inference.pipelines.runner import PipelineRunner
from coral_inference.pipelines.sources_policy import UNREACHABLE
from coral_inference.pipelines.status import PipelineState
from tests.pipelines.media import blur_workflow


def runner_seeing(source_state: str, frames: int) -> PipelineRunner:
    runner = PipelineRunner(None, blur_workflow(), "rtsp://op:pw@127.0.0.1:8554/cam")
    runner._state = PipelineState.running  # as after start()
    runner._frames = frames
    runner._on_status_update(
        SimpleNamespace(event_type="SOURCE_STATE_UPDATE", payload={"new_state": source_state})
    )
    return runner


@pytest.mark.parametrize("source_state", ["RESTARTING", "INITIALISING", "ERROR"])
def test_a_source_being_reopened_after_frames_is_reconnecting_with_the_generic_error(
    source_state,
):
    status = runner_seeing(source_state, frames=25).status()
    assert status["state"] == "reconnecting"
    assert status["error"] == f"source 'rtsp://***@127.0.0.1:8554/cam' {UNREACHABLE}"


def test_a_source_opening_for_the_first_time_is_not_reconnecting():
    assert runner_seeing("INITIALISING", frames=0).status()["state"] == "running"


def test_a_source_that_runs_again_is_running_with_no_error():
    runner = runner_seeing("ERROR", frames=25)
    runner._on_status_update(
        SimpleNamespace(event_type="SOURCE_STATE_UPDATE", payload={"new_state": "RUNNING"})
    )
    status = runner.status()
    assert status["state"] == "running" and status["error"] is None
