"""Issue 11 (and 13.1/13.2/13.3) acceptance: pipelines as supervised workers of a real web serve.

One module-scoped ``coral-runtime web serve`` (workers forked from a forkserver that
preloaded inference) runs test blocks that misbehave on purpose
(``tests/fixtures/coral_test_blocks``, loaded through ``WORKFLOWS_PLUGINS``): a block
that dies of SIGSEGV, a block that sleeps forever. The app must keep answering, the
other pipelines keep running, and the supervisor reports and applies its policy.

Slow as a module: the server's forkserver imports inference once (~15 s on an idle
machine, minutes on a loaded one) and every pipeline is a real worker process.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import psutil
import pytest

from tests.conftest import REPO, free_port
from tests.webapp.server import HEADERS, WebServer

from .media import write_test_video

pytestmark = [pytest.mark.server, pytest.mark.inference, pytest.mark.slow]

BACKOFF_S = 1.0
STALL_S = 4.0
STOP_S = 5.0


def misbehaving_workflow(block: str, *, after_frames: int, marker: str = "") -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": f"coral_test/{block}@v1",
                "name": "bad",
                "image": "$inputs.image",
                "after_frames": after_frames,
                "marker": marker,
            }
        ],
        "outputs": [{"type": "JsonField", "name": "frames", "selector": "$steps.bad.frames"}],
    }


def plain_workflow() -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "roboflow_core/image_blur@v1",
                "name": "blur",
                "image": "$inputs.image",
                "blur_type": "gaussian",
                "kernel_size": 5,
            }
        ],
        "outputs": [{"type": "JsonField", "name": "preview", "selector": "$steps.blur.image"}],
    }


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # 160x120, 3000 frames: minutes of video at the tests' max_fps, encoded in seconds.
    return write_test_video(tmp_path_factory.mktemp("video") / "long.mp4", frames=3000, fps=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory, video):
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    root = tmp_path_factory.mktemp("workers")
    web = WebServer(
        root,
        free_port(),
        "services.pipelines.restart=on-failure",
        f"services.pipelines.restart_backoff_s={BACKOFF_S}",
        f"services.pipelines.stall_timeout_s={STALL_S}",
        f"services.pipelines.stop_timeout_s={STOP_S}",
        "services.pipelines.heartbeat_timeout_s=20",
        "services.pipelines.max_pipelines=6",
        "services.pipelines.reconnect_backoff_max_s=2",
        env={"WORKFLOWS_PLUGINS": "tests.fixtures.coral_test_blocks", "PYTHONPATH": str(REPO)},
    )
    web.root_dir = root
    web.start(timeout=400)
    yield web
    web.stop()


@pytest.fixture(autouse=True)
def _clean(server):
    """Every test ends with no pipeline left, even when it failed half-way."""
    yield
    with server.client(timeout=120) as http:
        for pipeline in http.get("/api/v1/pipelines").json():
            stop_and_delete(http, pipeline["id"])


def start(http: httpx.Client, workflow: dict, source, **body) -> dict:
    response = http.post(
        "/api/v1/pipelines",
        headers=HEADERS,
        json={"workflow": workflow, "source": str(source), **body},
    )
    assert response.status_code == 201, response.text
    return response.json()


def status(http: httpx.Client, pid: str) -> dict:
    return http.get(f"/api/v1/pipelines/{pid}").json()


def stop_and_delete(http: httpx.Client, pid: str) -> None:
    http.post(f"/api/v1/pipelines/{pid}/terminate", headers=HEADERS)
    http.delete(f"/api/v1/pipelines/{pid}", headers=HEADERS)


def test_a_segfault_fails_only_its_own_worker_and_it_comes_back_with_its_id(server, video):
    marker = server.root_dir / "segv.marker"
    with server.client(timeout=400) as http:
        healthy = start(http, plain_workflow(), video, name="healthy", max_fps=10)
        crashing = start(
            http,
            misbehaving_workflow("segfault", after_frames=15, marker=str(marker)),
            video,
            name="crashing",
            max_fps=10,
        )
        assert healthy["isolation"] == "process" and crashing["state"] == "running"
        assert (
            healthy["placement"]["npu_core_mask"] != crashing["placement"]["npu_core_mask"]
        )  # spread
        before = server.wait_for(
            lambda: (s := status(http, healthy["id"]))["frames"] > 5 and s, what="frames"
        )

        crashed = server.wait_for(
            lambda: (s := status(http, crashing["id"]))["last_exit"] and s,
            what="the crash reported",
            interval=0.2,
        )
        assert crashed["last_exit"]["signal"] == "SIGSEGV"
        assert "SIGSEGV" in crashed["last_exit"]["reason"]
        assert any("Segmentation fault" in line for line in crashed["last_exit"]["log_tail"])
        assert crashed["state"] in ("failed", "restarting", "starting", "running")
        assert http.get("/healthz").status_code == 200  # the app kept answering

        back = server.wait_for(
            lambda: (
                (s := status(http, crashing["id"]))["state"] == "running"
                and s["restarts"] >= 1
                and s["frames"] > 0
                and s
            ),
            what="the restarted worker",
            timeout=60,
        )
        assert back["id"] == crashing["id"] and back["last_exit"]["signal"] == "SIGSEGV"
        after = status(http, healthy["id"])
        assert (
            after["frames"] > before["frames"]
            and after["restarts"] == 0
            and after["state"] == "running"
        )
        assert after["resources"]["rss_bytes"] > 0 and after["resources"]["threads"] > 0
        metrics = http.get("/metrics").text
        assert f'coral_pipeline_rss_bytes{{pipeline_id="{healthy["id"]}"' in metrics
        stop_and_delete(http, healthy["id"])
        stop_and_delete(http, crashing["id"])


def test_a_hung_worker_is_detected_and_restarted(server, video):
    marker = server.root_dir / "hang.marker"
    with server.client(timeout=400) as http:
        hung = start(
            http,
            misbehaving_workflow("hang", after_frames=5, marker=str(marker)),
            video,
            max_fps=10,
        )
        back = server.wait_for(
            lambda: (
                (s := status(http, hung["id"]))["restarts"] >= 1
                and s["state"] == "running"
                and s["frames"] > 0
                and s
            ),
            what="the hung worker restarted",
            timeout=60 + STALL_S,
        )
        assert "hung: no frame" in back["last_exit"]["reason"]
        stop_and_delete(http, hung["id"])


def test_terminate_of_a_hung_worker_completes_within_its_timeout(server, video):
    with server.client(timeout=400) as http:
        hung = start(http, misbehaving_workflow("hang", after_frames=3), video, max_fps=10)
        server.wait_for(
            lambda: status(http, hung["id"])["frames"] >= 2, what="frames before the hang"
        )
        time.sleep(1.0)  # inside the block's sleep now
        began = time.monotonic()
        terminated = http.post(f"/api/v1/pipelines/{hung['id']}/terminate", headers=HEADERS).json()
        elapsed = time.monotonic() - began
        assert terminated["state"] == "terminated", terminated
        assert elapsed < STOP_S + 8, elapsed  # stop timeout, then SIGTERM/SIGKILL grace
        http.delete(f"/api/v1/pipelines/{hung['id']}", headers=HEADERS)


def dead_rtsp_url() -> str:
    with socket.socket() as s:  # a port nothing listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"rtsp://127.0.0.1:{port}/live"


def test_a_camera_that_is_down_keeps_its_pipeline_reconnecting_and_readyz_degraded(server):
    with server.client(timeout=400) as http:
        created = start(http, plain_workflow(), dead_rtsp_url())
        assert created["state"] in ("reconnecting", "running"), (
            created
        )  # inference opens sources on a thread
        server.wait_for(
            lambda: (s := status(http, created["id"]))["state"] == "reconnecting" and s["error"],
            what="reconnecting",
            timeout=30,
        )
        ready = http.get("/readyz", headers=HEADERS)
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert "pipelines" in ready.json()["degraded"]
        time.sleep(2.5)
        assert status(http, created["id"])["state"] == "reconnecting"  # still trying, not failed
        stop_and_delete(http, created["id"])
        assert http.get("/readyz", headers=HEADERS).json()["status"] == "ready"


def worker_pids(server) -> set[int]:
    """Pipeline workers: the app's grandchildren (its children: forkserver, resource tracker)."""
    app = psutil.Process(server.process.pid)
    return {p.pid for p in app.children(recursive=True) if p.ppid() != app.pid}


def test_delete_during_start_leaves_no_worker_and_counts_right(server, video):
    with server.client(timeout=400) as http:
        outcome: dict = {}

        def create() -> None:
            outcome["response"] = http.post(
                "/api/v1/pipelines",
                headers=HEADERS,
                json={"workflow": plain_workflow(), "source": str(video), "max_fps": 5},
            )

        thread = threading.Thread(target=create)
        thread.start()
        pid = server.wait_for(
            lambda: [p["id"] for p in http.get("/api/v1/pipelines").json()],
            interval=0.05,
            what="the starting pipeline listed",
        )[0]
        assert http.delete(f"/api/v1/pipelines/{pid}", headers=HEADERS).status_code == 204
        thread.join(120)
        assert outcome["response"].status_code in (201, 409), outcome["response"].text
        assert http.get("/api/v1/pipelines").json() == []
        server.wait_for(lambda: not worker_pids(server), what="no worker left", timeout=30)
        ready = http.get("/readyz", headers=HEADERS).json()
        assert ready["checks"]["pipelines"]["detail"].startswith("0 active")


@pytest.mark.slow  # 30 real worker starts and stops: about a second each on an idle machine
def test_thirty_start_terminate_cycles_leak_no_process_thread_or_fd(server, video):
    app = psutil.Process(server.process.pid)
    with server.client(timeout=400) as http:
        warm = start(
            http, plain_workflow(), video, max_fps=5
        )  # first start: pools and threads created
        stop_and_delete(http, warm["id"])
        time.sleep(1.5)
        baseline = (len(worker_pids(server)), app.num_threads(), app.num_fds())
        for _ in range(30):
            created = start(http, plain_workflow(), video, max_fps=5)
            stop_and_delete(http, created["id"])

        def settled():
            now = (len(worker_pids(server)), app.num_threads(), app.num_fds())
            return (
                now
                if now[0] == baseline[0] and now[1] <= baseline[1] + 1 and now[2] <= baseline[2]
                else None
            )

        server.wait_for(settled, what=f"process/thread/fd counts back to {baseline}", timeout=30)


def test_two_pipelines_of_one_workflow_record_into_their_own_folders(server, video):
    recorder = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "coral/video_recorder@v1",
                "name": "record",
                "image": "$inputs.image",
                "mode": "continuous",
                "output_directory": "shared",
                "segment_seconds": 1,
                "preset": "ultrafast",
            }
        ],
        "outputs": [],
    }
    server.write_workflow("record.json", recorder)
    with server.client(timeout=400) as http:
        ids = [
            http.post(
                "/api/v1/pipelines",
                headers=HEADERS,
                json={"workflow_file": "record.json", "source": str(video), "max_fps": 15},
            ).json()["id"]
            for _ in range(2)
        ]
        assert len(set(ids)) == 2

        def folders():
            rows = [
                r["path"]
                for r in http.get("/api/v1/recordings").json()
                if r["path"].startswith("shared/")
            ]
            found = {path.split("/")[1] for path in rows}
            return found if len(found) == 2 else None

        found = server.wait_for(folders, what="two recording folders", timeout=90)
        # the same default name (the workflow file), yet each folder belongs to one pipeline id
        assert {next(i for i in ids if folder.endswith(i)) for folder in found} == set(ids), found


def test_a_viewer_of_the_web_app_gets_the_frames_of_a_block_channel_inside_a_worker(
    server, video, monkeypatch
):
    import asyncio

    import aioice.ice

    from tests.media.webrtc_client import receive

    previewing = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "coral/webrtc_preview@v1",
                "name": "preview",
                "image": "$inputs.image",
                "channel": "gate",
                "max_fps": 30,
            }
        ],
        "outputs": [{"type": "JsonField", "name": "channel", "selector": "$steps.preview.channel"}],
    }
    monkeypatch.setattr(  # aioice never offers 127.0.0.1 by itself; the viewer is on this machine
        aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    )
    with server.client(timeout=400) as http:
        pid = start(http, previewing, video, name="blocks", max_fps=15)["id"]
        results = server.wait_for(
            lambda: (
                (r := http.get(f"/api/v1/pipelines/{pid}/results")).status_code == 200 and r.json()
            ),
            what="a result",
        )
        channel = results["outputs"]["channel"]
        assert channel.endswith(".gate") and pid in channel  # the block's own channel name
        # The block published inside the worker; the web process's hub lists the channel ...
        listed = server.wait_for(
            lambda: [c for c in http.get("/api/v1/streams").json() if c["name"] == channel],
            what=f"channel {channel} in the web app's hub",
        )
        assert listed[0]["height"] == 120 and listed[0]["width"] == 160
        snapshot = http.get(f"/api/v1/streams/{channel}/snapshot.jpg")
        assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"

    async def answer(sdp: str) -> dict:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            response = await client.post(
                f"/api/v1/streams/{channel}/webrtc",
                headers=HEADERS,
                json={"sdp": sdp, "type": "offer"},
            )
            assert response.status_code == 200, response.text
            return response.json()

    # ... and a WebRTC viewer of the web process receives the block's frames, not a placeholder
    # (360x640): the test video is 160x120 with a moving square.
    frames = asyncio.run(receive(answer, 5, timeout=30))
    assert all(frame.shape == (120, 160, 3) for frame in frames)
    assert len({frame.tobytes() for frame in frames}) > 1  # live frames, not one repeated
