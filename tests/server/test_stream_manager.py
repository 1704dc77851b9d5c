"""Coral in Roboflow's inference server with its stream manager on (``coral-runtime server start``).

Real processes: the launcher runs inference's HTTP app under uvicorn, the stream
manager process and one pipeline process per ``initialise``, offline, on loopback.
Two pipelines run examples/workflows/line_counting.json on two demo videos.

Marked slow: the server imports inference (~15 s), every pipeline process compiles
the workflow and loads the model, and the videos play at their real rate so the
preview and the metrics can be watched while they run (~1.5 min in all).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import pytest

from coral_inference import compat
from tests.conftest import free_port

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.inference]

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = json.loads((REPO / "examples" / "workflows" / "line_counting.json").read_text())
# (seed, seconds): the last crossing is >20 frames before the end. The first video is longer so
# the first pipeline still runs when the second starts (the manager initialises one at a time).
FPS, VIDEOS = 15, ((108, 20), (143, 8))
# Played at 5 fps, the first pipeline outlasts the second one's initialisation (a minute here).
MAX_FPS = 5


def start_server(
    workdir: Path, config: Path, *, stream_manager: bool
) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = workdir / "console.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CORAL_DATA_DIR": str(workdir / "data")}
    for name in (
        "ROBOFLOW_API_KEY",
        "WORKFLOWS_PLUGINS",
        "ENABLE_STREAM_API",
        "STREAM_MANAGER_PORT",
    ):
        env.pop(name, None)
    command = [
        sys.executable,
        "-c",
        "from coral_inference.cli.main import main; main()",
        "server",
        "start",
        "-c",
        str(config),
        "--port",
        str(port),
        "--log-file",
        str(workdir / "server.log"),
    ]
    if not stream_manager:
        command.append("--no-stream-manager")
    with log.open("w") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/info", timeout=2).status_code == 200:
                return process, url, log
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.terminate()
    pytest.fail("inference server did not start:\n" + log.read_text()[-3000:])


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def settled_frame(seed: int, seconds: int) -> int:
    """The first frame count after which the video's line counts no longer change."""
    from coral_inference.demo.scenes import line_crossings, traffic_scene

    frames = seconds * FPS
    scene = traffic_scene(seed, 640, 480, frame_count=frames, line_x=320.0)
    totals, _ = line_crossings(scene, frames, 320.0)
    settled = frames
    while settled > 2 and line_crossings(scene, settled - 1, 320.0)[0] == totals:
        settled -= 1
    return settled


def demo_videos(directory: Path) -> list[tuple[Path, object]]:
    """Two demo videos (seeds with crossings both ways) and their ground truth."""
    from coral_inference.demo import write_demo_video

    return [
        (
            directory / f"demo-{seed}.mp4",
            write_demo_video(directory / f"demo-{seed}.mp4", seconds=seconds, fps=FPS, seed=seed),
        )
        for seed, seconds in VIDEOS
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    workdir = tmp_path_factory.mktemp("sm-server")
    config = workdir / "coral.yaml"
    config.write_text(
        f"storage:\n  root: {workdir / 'coral'}\n  recordings: {workdir / 'recordings'}\n"
        "metrics:\n  sinks:\n    prometheus: {type: prometheus}\n"
        f"    jsonl: {{type: jsonl, path: {workdir / 'metrics.jsonl'}}}\n"
        "services:\n  streams:\n    host_addresses: ['127.0.0.1']\n"
    )
    videos = demo_videos(workdir)
    process, url, log = start_server(workdir, config, stream_manager=True)
    try:
        yield {"url": url, "workdir": workdir, "videos": videos, "log": log, "process": process}
    finally:
        stop_server(process)


def initialise(url: str, video: Path) -> str:
    payload = {
        "video_configuration": {
            "type": "VideoConfiguration",
            "video_reference": str(video),
            "max_fps": MAX_FPS,
            # A file: wait for the workflow, never drop (the defaults drop frames).
            "source_buffer_filling_strategy": "WAIT",
            "source_buffer_consumption_strategy": "LAZY",
        },
        "processing_configuration": {
            "type": "WorkflowConfiguration",
            "workflow_specification": WORKFLOW,
        },
        # /consume returns one result per call, oldest first: keep only the latest.
        "sink_configuration": {"type": "MemorySinkConfiguration", "results_buffer_size": 1},
        # The manager stops a file pipeline once the file is decoded: keep the decoder one
        # frame ahead so every frame is processed first.
        "decoding_buffer_size": 1,
    }
    response = httpx.post(f"{url}/inference_pipelines/initialise", json=payload, timeout=600)
    assert response.status_code == 200, response.text
    return response.json()["context"]["pipeline_id"]


def consume(url: str, pipeline_id: str) -> list[tuple[int, int, int]]:
    """(frame id, count_in, count_out) of the results waiting in the pipeline's buffer."""
    response = httpx.request(
        "GET",
        f"{url}/inference_pipelines/{pipeline_id}/consume",
        # the manager serves one command at a time; with inference 1.5.2 a consume waited
        # over 30 s behind the other pipeline's commands on a busy 2-core machine
        timeout=120,
        json={"excluded_fields": ["annotated", "predictions", "recording"]},
    )
    if response.status_code != 200:
        return []
    body = response.json()
    rows = []
    for output, meta in zip(body.get("outputs", []), body.get("frames_metadata", [])):
        if output and meta:
            rows.append((int(meta["frame_id"]), int(output["count_in"]), int(output["count_out"])))
    return rows


def watch_preview(url: str, channel: str, n: int = 3) -> list:
    import aioice.ice

    from tests.media.webrtc_client import receive

    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]

    async def answer(sdp: str) -> dict:
        async with httpx.AsyncClient() as client:
            reply = await client.post(
                f"{url}/coral/preview/{channel}/offer",
                json={"sdp": sdp, "type": "offer"},
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
            return reply.json()

    return asyncio.run(receive(answer, n, timeout=30))


def wait_for_channel(url: str, channel: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        live = [c["channel"] for c in httpx.get(f"{url}/coral/preview", timeout=10).json()]
        if channel in live:
            return
        time.sleep(0.5)
    raise AssertionError(f"preview channel {channel} never appeared")


def frames_in(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.mark.timeout(1800)  # server start alone takes minutes on a loaded 2-core machine
def test_two_stream_manager_pipelines_record_count_export_metrics_and_preview(server):
    url, workdir = server["url"], server["workdir"]
    from concurrent.futures import ThreadPoolExecutor

    # The manager serves one command at a time: while it initialises the second pipeline
    # (a minute on a loaded machine) /list and /consume wait, but the HTTP process's own
    # /coral/preview and /coral/metrics answer. So the first preview is watched before the
    # second pipeline starts, and metrics and the second preview while it starts.
    videos = [video for video, _ in server["videos"]]
    ids = [initialise(url, videos[0])]
    previews: dict[str, int] = {}
    wait_for_channel(url, f"{ids[0]}.line-counting")
    previews[ids[0]] = len(watch_preview(url, f"{ids[0]}.line-counting"))
    seen_fps: set[str] = set()
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(initialise, url, videos[1])
        deadline = time.monotonic() + 900
        while not second.done() and time.monotonic() < deadline:
            time.sleep(0.5)
        ids.append(second.result())
    last: dict[str, tuple[int, int, int]] = {}
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        listed = httpx.get(f"{url}/inference_pipelines/list", timeout=60).json()
        running = set(listed.get("pipelines", [])) & set(ids)
        for pipeline_id in running:
            for row in consume(url, pipeline_id):
                if row[0] >= last.get(pipeline_id, (-1, 0, 0))[0]:
                    last[pipeline_id] = row
        if len(seen_fps) < 2:  # both pipelines' fps series in one scrape
            scrape = httpx.get(f"{url}/coral/metrics", timeout=10).text
            fps_lines = [
                line for line in scrape.splitlines() if line.startswith("coral_pipeline_fps{")
            ]
            in_scrape = {i for i in ids if any(f'pipeline_id="{i}"' in line for line in fps_lines)}
            if in_scrape == set(ids):
                seen_fps = in_scrape
        if ids[1] not in previews and ids[1] in running and ids[1] in last:
            previews[ids[1]] = len(watch_preview(url, f"{ids[1]}.line-counting"))
        if not running and len(last) == 2:
            break
        time.sleep(0.3)
    else:
        pytest.fail("pipelines did not finish:\n" + server["log"].read_text()[-3000:])
    for pipeline_id in ids:
        httpx.post(f"{url}/inference_pipelines/{pipeline_id}/terminate", timeout=60)

    assert seen_fps == set(ids), "fps series of both pipelines in one scrape of /coral/metrics"
    assert previews == {pid: 3 for pid in ids}, (
        "an aiortc viewer received frames of each pipeline's preview"
    )

    # Line counts of each pipeline's last results match the video's ground truth.
    for pipeline_id, (_, truth), (seed, seconds) in zip(ids, server["videos"], VIDEOS):
        frame_id, count_in, count_out = last[pipeline_id]
        # Results are consumed while the pipeline runs; any result after the last crossing
        # (plus two frames for the tracker) carries the video's final counts.
        settled = settled_frame(seed, seconds)
        assert frame_id >= settled + 2, (pipeline_id, frame_id, settled)
        assert (count_in, count_out) == (
            truth.crossings["left_to_right"],
            truth.crossings["right_to_left"],
        )

    # Recordings: one folder per pipeline, finalised at the end, every processed frame in it.
    processed = {}
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        point = json.loads(line)
        if point["measurement"] == "coral_pipeline":
            processed[point["tags"]["pipeline_id"]] = int(point["fields"]["frames_total"])
    for pipeline_id, (_, truth) in zip(ids, server["videos"]):
        folder = workdir / "recordings" / "line-counting" / pipeline_id
        files = sorted(folder.glob("*.mp4"))
        assert files, (
            f"no recording in {folder}: {sorted(p.name for p in folder.parent.rglob('*'))}"
        )
        recorded = sum(frames_in(path) for path in files)
        assert processed[pipeline_id] == truth.frame_count
        assert recorded == processed[pipeline_id], (pipeline_id, recorded, processed[pipeline_id])


@pytest.mark.timeout(1200)
def test_a_bad_coral_config_fails_only_coral_workflows_and_heals_without_restart(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bad-config")
    config = workdir / "coral.yaml"
    good = f"storage:\n  root: {workdir / 'coral'}\n"
    config.write_text(good + "recording:\n  crf: 99\n")
    process, url, _ = start_server(workdir, config, stream_manager=False)
    try:
        core_only = {
            "version": "1.0",
            "inputs": [{"type": "WorkflowParameter", "name": "x"}],
            "steps": [],
            "outputs": [{"type": "JsonField", "name": "x", "selector": "$inputs.x"}],
        }
        response = httpx.post(
            f"{url}/workflows/run",
            timeout=120,
            json={"specification": core_only, "inputs": {"x": 3}},
        )
        assert response.status_code == 200, response.text[:2000]
        assert response.json()["outputs"][0]["x"] == 3

        coral = {
            "version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [
                {
                    "type": "coral/object_detection_model@v1",
                    "name": "detect",
                    "images": "$inputs.image",
                    "model": "coral-demo",
                }
            ],
            "outputs": [
                {"type": "JsonField", "name": "n", "selector": "$steps.detect.predictions"}
            ],
        }
        import base64

        import numpy as np

        _, png = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))
        image = {"type": "base64", "value": base64.b64encode(png.tobytes()).decode()}
        response = httpx.post(
            f"{url}/workflows/run",
            timeout=120,
            json={"specification": coral, "inputs": {"image": image}},
        )
        assert response.status_code == 500, response.text[:2000]
        message = response.json()["message"]
        assert (
            "recording.crf" in message
            and str(config) in message
            and "coral-runtime config validate" in message
        )

        config.write_text(good)  # fixed: the next request heals, no restart
        response = httpx.post(
            f"{url}/workflows/run",
            timeout=120,
            json={"specification": coral, "inputs": {"image": image}},
        )
        assert response.status_code == 200, response.text[:2000]
        predictions = response.json()["outputs"][0]["n"]
        assert predictions["predictions"] == []  # the Coral step ran: nothing on a black image
        info = compat.inference_info()
        assert info is not None
        if info.engine_module == "roboflow_workflows":
            # 1.5.2's serialiser gives zero detections no image size (width/height None, for
            # Roboflow's own blocks too); 1.8.3's reads it from the block's metadata. Only
            # those two releases are locked and run (README, compatibility).
            assert predictions["image"] == {"width": 64, "height": 64}
    finally:
        stop_server(process)
