"""End to end, offline: detection → recorder → metrics sink → WebRTC preview in an InferencePipeline.

A synthetic demo video runs through ``PipelineRunner``. Afterwards the MP4
segments decode to every frame, VictoriaMetrics (InfluxDB v2 write API) holds
every point, a Prometheus server scraped the pipeline's fps, and an aiortc
viewer received the preview. A second run keeps VictoriaMetrics down for the
whole run and starts it afterwards: every point arrives once, in order.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

import coral_inference

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import free_port
from media.frames import decode
from media.webrtc_client import receive
from metrics.servers import Prometheus, VictoriaMetrics, wait_until

pytestmark = [pytest.mark.inference, pytest.mark.server, pytest.mark.slow]

FPS, SECONDS = 15, 6


def media_workflow() -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "coral/object_detection_model@v1",
                "name": "detect",
                "images": "$inputs.image",
                "model": "coral-demo",
            },
            {
                "type": "coral/video_recorder@v1",
                "name": "rec",
                "image": "$inputs.image",
                "output_directory": "e2e",
                "segment_seconds": 2,
            },
            {
                "type": "coral/metrics_sink@v1",
                "name": "metrics",
                "measurement": "e2e",
                "image": "$inputs.image",
                "fields": {"objects": "$steps.detect.predictions"},
                "sinks": ["influx"],
            },
            {
                "type": "coral/webrtc_preview@v1",
                "name": "preview",
                "image": "$inputs.image",
                "channel": "e2e",
                "max_fps": 30,
            },
        ],
        "outputs": [
            {"type": "JsonField", "name": name, "selector": f"$steps.{name}.*"}
            for name in ("rec", "metrics", "preview")
        ],
    }


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory, require_inference_module):
    from coral_inference.demo.scenes import write_demo_video

    path = tmp_path_factory.mktemp("video") / "demo.mp4"
    truth = write_demo_video(path, seconds=SECONDS, fps=FPS, seed=3)
    return path, truth


@pytest.fixture(scope="module")
def require_inference_module():
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    compat.load_inference_core()


def runtime_config(tmp_path: Path, influx_url: str, exporter_port: int | None) -> dict:
    return {
        "storage": {"root": str(tmp_path), "recordings": str(tmp_path / "rec")},
        "recording": {"queue_frames": 512, "idle_close_s": 1.0},
        "metrics": {
            "sinks": {
                "influx": {
                    "type": "influxdb",
                    "url": influx_url,
                    "batch_size": 50,
                    "flush_interval_s": 0.2,
                    "retry_initial_s": 0.2,
                    "retry_max_s": 1.0,
                },
                "prometheus": {"type": "prometheus", "port": exporter_port},
            }
        },
        "services": {"streams": {"host_addresses": ["127.0.0.1"], "peer_timeout_s": 5}},
    }


def run_pipeline(context, video: Path, results: list) -> dict:
    from coral_inference.pipelines import PipelineRunner

    runner = PipelineRunner(
        context, media_workflow(), str(video), pipeline_id="e2e", on_result=results.append
    )
    runner.start()
    assert runner.join(300), "the pipeline did not finish"
    return runner.status()


@pytest.fixture
def loopback_viewer(monkeypatch):
    import aioice.ice

    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    )


def test_detection_recording_metrics_and_preview_in_one_pipeline(
    tmp_path, demo_video, require_tool, loopback_viewer, monkeypatch
):
    monkeypatch.setenv("WORKFLOWS_PLUGINS", "coral_workflows")
    video, truth = demo_video
    vm = VictoriaMetrics(require_tool("victoria-metrics"), tmp_path / "vm", free_port())
    exporter_port = free_port()
    prom = Prometheus(
        require_tool("prometheus"), tmp_path / "prom", free_port(), [f"127.0.0.1:{exporter_port}"]
    )
    with vm, prom:
        context = coral_inference.init(runtime_config(tmp_path, vm.url, exporter_port))
        hub = context.streams
        viewed: dict = {}

        def viewer():
            wait_until(
                lambda: hub.latest_frame("e2e") is not None, timeout=120, what="first preview frame"
            )
            viewed["frames"] = asyncio.run(receive(lambda sdp: hub.answer("e2e", sdp), 5))

        thread = threading.Thread(target=viewer)
        thread.start()
        results: list = []
        status = run_pipeline(context, video, results)
        thread.join(60)
        assert status["state"] == "finished" and status["error"] is None, status
        assert status["frames"] == truth.frame_count
        for result in results:
            assert not any(
                result.outputs[name]["error_status"] for name in ("rec", "metrics", "preview")
            ), result.outputs
        assert [f.shape for f in viewed["frames"]] == [
            (truth.height, truth.width, 3)
        ] * 5  # pipeline frames, not placeholders

        fps = prom.wait_for('coral_pipeline_fps{pipeline_id="e2e"}', timeout=60)
        assert float(fps[0]["value"][1]) > 0
        coral_inference.shutdown()  # finishes the open segment and flushes the InfluxDB batch

        series = vm.export('{__name__="e2e_objects"}', expect_points=truth.frame_count)
        assert sum(len(s["values"]) for s in series) == truth.frame_count
        assert series[0]["metric"]["source"] == "0"  # InferencePipeline numbers its sources
        assert vm.export('{__name__="coral_pipeline_fps",pipeline_id="e2e"}')

    segments = sorted((tmp_path / "rec" / "e2e").rglob("segment_*.mp4"))
    decoded = [decode(p) for p in segments]
    assert sum(d[0] for d in decoded) == truth.frame_count
    assert len(segments) == SECONDS // 2
    for frames, duration, codec, _ in decoded:
        assert codec == "h264" and duration == pytest.approx((frames - 1) / FPS, abs=0.01)


def test_metrics_server_down_for_the_whole_run_gets_every_point_after_replay(
    tmp_path, demo_video, require_tool, monkeypatch
):
    monkeypatch.setenv("WORKFLOWS_PLUGINS", "coral_workflows")
    video, truth = demo_video
    vm = VictoriaMetrics(require_tool("victoria-metrics"), tmp_path / "vm", free_port())
    context = coral_inference.init(runtime_config(tmp_path, vm.url, None))
    results: list = []
    status = run_pipeline(context, video, results)
    assert status["state"] == "finished" and status["frames"] == truth.frame_count
    assert not any(
        r.outputs["metrics"]["error_status"] for r in results
    )  # a down server is not the block's error
    sink = context.metrics.sink("influx")
    wait_until(
        lambda: sink.stats.queued == 0 and sink.stats.spooled >= truth.frame_count,
        what="points spooled",
    )
    assert sink.stats.sent == 0 and sink.stats.dropped == 0
    with vm:
        wait_until(lambda: sink.stats.spooled == 0, timeout=60, what="spool replayed")
        coral_inference.shutdown()
        series = vm.export('{__name__="e2e_objects"}', expect_points=truth.frame_count)
    values = [v for s in series for v in s["timestamps"]]
    assert (
        len(values) == truth.frame_count and len(set(values)) == truth.frame_count
    )  # all, none twice
    assert sorted(values) == values or len(series) > 1
