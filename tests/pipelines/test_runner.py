"""PipelineRunner on real InferencePipelines: files to the end, crashes, pause/resume/terminate."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coral_inference.pipelines import (
    PipelineRunner,
    PipelineStartError,
    PipelineStateError,
    parse_source,
)

from .media import blur_workflow, failing_workflow, write_test_video


def test_parse_source_turns_digit_strings_into_camera_indexes():
    assert parse_source("0") == 0
    assert parse_source(" 3 ") == 3
    assert parse_source(2) == 2
    assert parse_source("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    assert parse_source("videos/a.mp4") == "videos/a.mp4"


@pytest.mark.parametrize("bad", ["", "   ", True])
def test_parse_source_refuses_empty_and_boolean_sources(bad):
    with pytest.raises((ValueError, TypeError)):
        parse_source(bad)


def test_runner_refuses_something_that_is_not_a_workflow():
    with pytest.raises(ValueError, match="workflow definition"):
        PipelineRunner(None, {"version": "1.0"}, "a.mp4")


def test_status_hides_credentials_of_stream_urls():
    runner = PipelineRunner(None, blur_workflow(), "rtsp://admin:secret@10.0.0.5:554/live")
    reference = runner.status()["sources"][0]["reference"]
    assert "secret" not in reference and reference == "rtsp://***@10.0.0.5:554/live"
    assert runner.status()["state"] == "created"


class _BuiltPipeline:
    """Stands in for the InferencePipeline that ``start`` builds (no decoding, no inference)."""

    def __init__(self) -> None:
        self.started = False
        self.terminated = threading.Event()

    def start(self, use_main_thread: bool = False) -> None:
        self.started = True

    def terminate(self) -> None:
        self.terminated.set()

    def join(self) -> None:
        self.terminated.wait(5)  # a pipeline runs until it is terminated


def test_a_terminate_that_races_start_stops_the_pipeline_once_it_is_built(monkeypatch):
    # 13.3 in thread mode: DELETE/terminate while the pipeline is being built (compile, source
    # open) found nothing to stop; the built pipeline then ran on as an orphan.
    runner = PipelineRunner(None, blur_workflow(), "a.mp4")
    built = _BuiltPipeline()

    def build_while_terminated() -> _BuiltPipeline:
        other = threading.Thread(target=runner.terminate)  # e.g. the API's DELETE
        other.start()
        other.join(5)
        assert runner.state.value == "terminated"  # it was asked to stop, mid-build
        return built

    monkeypatch.setattr(runner, "_build_pipeline", build_while_terminated)
    runner.start()
    assert built.started
    assert built.terminated.is_set(), "the pipeline built after terminate was left running"
    assert runner.join(5)
    assert runner.status()["state"] == "terminated"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("video") / "square.mp4", frames=60)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("video") / "long.mp4", frames=600)


@pytest.fixture
def context(require_inference):
    import coral_inference

    return coral_inference.init({})


@pytest.mark.inference
@pytest.mark.slow
def test_a_file_runs_to_the_end_and_every_frame_reaches_the_sink(context, video):
    seen = []
    runner = PipelineRunner(context, blur_workflow(), str(video), on_result=seen.append)
    runner.start()
    assert runner.join(120)
    status = runner.status()
    assert status["state"] == "finished", status
    assert status["frames"] == 60 == len(seen)
    assert status["error"] is None
    assert status["inference_latency_ms"] is not None and status["inference_latency_ms"] >= 0
    latest = runner.latest_result()
    assert latest is seen[-1]
    assert latest.image().shape == (120, 160, 3)  # the blurred output, not just the input
    assert set(latest.outputs) == {"preview"}
    assert latest.detections_count() == 0


@pytest.mark.inference
@pytest.mark.slow
def test_a_crashing_workflow_is_reported_in_status_not_raised(context, video):
    runner = PipelineRunner(context, failing_workflow(), str(video))
    runner.start()
    assert runner.join(120)
    status = runner.status()
    assert status["state"] == "failed"
    assert "StepExecutionError" in status["error"]
    assert status["frames"] == 0
    # the process and other pipelines carry on
    other = PipelineRunner(context, blur_workflow(), str(video))
    other.start()
    assert other.join(120) and other.status()["state"] == "finished"


@pytest.mark.inference
@pytest.mark.slow
def test_an_unreachable_source_is_reported_as_failed(context, tmp_path):
    runner = PipelineRunner(context, blur_workflow(), str(tmp_path / "missing.mp4"))
    runner.start()
    assert runner.join(60)
    status = runner.status()
    assert status["state"] == "failed" and "missing.mp4" in status["error"]


@pytest.mark.inference
@pytest.mark.slow
def test_a_workflow_that_does_not_compile_raises_start_error_and_reports_it(context, video):
    workflow = blur_workflow()
    workflow["steps"][0]["type"] = "roboflow_core/no_such_block@v1"
    runner = PipelineRunner(context, workflow, str(video))
    with pytest.raises(PipelineStartError, match="did not start"):
        runner.start()
    assert runner.status()["state"] == "failed"
    assert runner.join(0)
    with pytest.raises(PipelineStateError):
        runner.start()


@pytest.mark.inference
@pytest.mark.slow
def test_pause_holds_frames_back_resume_lets_them_flow_terminate_stops(context, long_video):
    arrived = threading.Event()
    runner = PipelineRunner(
        context,
        blur_workflow(),
        str(long_video),
        max_fps=30,
        on_result=lambda result: arrived.set(),
    )
    runner.start()
    assert arrived.wait(60)
    with pytest.raises(PipelineStateError):
        runner.resume()
    runner.pause()
    assert runner.status()["state"] == "paused"
    frames_when_paused = runner.status()["frames"]
    assert not runner.join(1.0)  # nothing ends while paused...
    assert (
        runner.status()["frames"] <= frames_when_paused + 1
    )  # ...and at most the in-flight frame lands
    arrived.clear()
    runner.resume()
    assert arrived.wait(30)
    runner.terminate()
    assert runner.join(60)
    status = runner.status()
    assert status["state"] == "terminated" and status["error"] is None
    assert 0 < status["frames"] < 600
    runner.terminate()  # idempotent


@pytest.mark.inference
@pytest.mark.slow
def test_a_failing_result_consumer_is_counted_and_does_not_stop_the_pipeline(context, video):
    def broken(result):
        raise RuntimeError("consumer bug")

    runner = PipelineRunner(context, blur_workflow(), str(video), on_result=broken)
    runner.start()
    assert runner.join(120)
    status = runner.status()
    assert status["state"] == "finished" and status["frames"] == 60
    assert status["callback_errors"] == 60
