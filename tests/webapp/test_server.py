"""Acceptance: the whole API through HTTP against a real ``coral-runtime web serve`` on loopback.

A pipeline runs the demo detector on the demo video and records it; an aiortc
client receives its preview; recordings are listed and range-downloaded;
metrics are read; the server restarts and the pipeline comes back with its id;
security holds over the wire; schemathesis finds no 5xx; a web plugin
installed as a distribution is mounted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, free_port

from .server import HEADERS, WebServer, detect_and_record_workflow

pytestmark = [pytest.mark.server, pytest.mark.inference, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory):
    from coral_inference.demo.scenes import write_demo_video

    path = tmp_path_factory.mktemp("demo") / "demo.mp4"
    write_demo_video(path, seconds=24, fps=15)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_video):
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    web = WebServer(tmp_path_factory.mktemp("web"), free_port())
    web.write_workflow("detect_and_record.json", detect_and_record_workflow())
    web.start()
    yield web
    web.stop()


@pytest.fixture(scope="module")
def pipeline(server, demo_video):
    with server.client() as http:
        response = http.post(
            "/api/v1/pipelines",
            headers=HEADERS,
            json={
                "name": "demo",
                "workflow_file": "detect_and_record.json",
                "source": str(demo_video),
                "max_fps": 6,
                "preview_output": "annotated",
            },
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]


def test_a_pipeline_runs_the_demo_detector_and_reports_its_status(server, pipeline):
    with server.client() as http:
        status = server.wait_for(
            lambda: (s := http.get(f"/api/v1/pipelines/{pipeline}").json())["frames"] >= 10 and s,
            what="10 frames",
        )
        assert status["state"] == "running" and status["error"] is None
        assert status["fps"] > 0 and status["inference_latency_ms"] > 0
        results = server.wait_for(
            lambda: (
                (r := http.get(f"/api/v1/pipelines/{pipeline}/results").json())["outputs"][
                    "predictions"
                ]
                and r
            ),
            what="a frame with detections",
        )
        detection = results["outputs"]["predictions"][0]
        assert {"class_name", "confidence"} <= set(detection)
        assert results["outputs"]["annotated"]["image"] == {"height": 480, "width": 640}
        snapshot = http.get(f"/api/v1/pipelines/{pipeline}/snapshot.jpg")
        assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"


def test_an_aiortc_viewer_receives_the_pipeline_preview(server, pipeline, monkeypatch):
    import aioice.ice
    import httpx

    from tests.media.webrtc_client import receive

    # aioice never offers 127.0.0.1 by itself; the viewer is on the same machine.
    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    )

    async def answer(sdp: str) -> dict:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            response = await http.post(
                f"/api/v1/pipelines/{pipeline}/webrtc",
                headers=HEADERS,
                json={"sdp": sdp, "type": "offer"},
            )
            assert response.status_code == 200, response.text
            return response.json()

    frames = asyncio.run(receive(answer, 5, timeout=30))
    assert all(
        frame.shape == (480, 640, 3) for frame in frames
    )  # the pipeline's frames, not the placeholder
    assert np.mean([f.std() for f in frames]) > 5


def test_recordings_are_listed_and_range_downloaded(server, pipeline):
    with server.client() as http:
        rows = server.wait_for(
            lambda: [r for r in http.get("/api/v1/recordings").json() if r["size_bytes"] > 2000],
            what="a recording",
        )
        path = rows[0]["path"]
        assert path.startswith("acceptance/")
        head = http.get(f"/api/v1/recordings/{path}", headers={"Range": "bytes=0-63"})
        assert head.status_code == 206 and len(head.content) == 64 and b"ftyp" in head.content
        total = int(head.headers["content-range"].rsplit("/", 1)[1])
        tail = http.get(f"/api/v1/recordings/{path}", headers={"Range": f"bytes={total - 10}-"})
        assert tail.status_code == 206 and len(tail.content) == 10


def test_metrics_carry_pipeline_and_host_figures(server, pipeline):
    with server.client() as http:

        def exposition() -> str | None:
            text = http.get("/metrics").text
            return text if f'pipeline_id="{pipeline}"' in text else None

        text = server.wait_for(exposition, what="pipeline metrics at /metrics")
        assert "coral_host_cpu_percent" in text and 'coral_web_pipelines{state="running"}' in text
        history = http.get("/api/v1/metrics/history", params={"pipeline_id": pipeline}).json()
        assert history["samples"] and history["samples"][-1]["fps"] >= 0
        ready = http.get("/readyz").json()
        assert ready["status"] == "ready" and set(ready["checks"]) == {
            "database",
            "pipelines",
            "monitor",
            "streams",
        }


def test_security_over_the_wire(server, pipeline, demo_video):
    body = {"workflow_file": "detect_and_record.json", "source": str(demo_video)}
    with server.client() as http:
        assert http.post("/api/v1/pipelines", json=body).status_code == 401
        assert (
            http.post("/api/v1/pipelines", json=body, headers={"X-API-Key": "wrong"}).status_code
            == 401
        )
        assert http.post(f"/api/v1/pipelines/{pipeline}/terminate").status_code == 401
        for path in (
            "..%2F..%2Fpipelines.sqlite3",
            "acceptance%2F..%2F..%2Fpipelines.sqlite3",
            "%2Fetc%2Fhostname",
        ):
            response = http.get(f"/api/v1/recordings/{path}")
            assert response.status_code in (403, 404) and b"SQLite" not in response.content
        escape = http.post(
            "/api/v1/pipelines", headers=HEADERS, json={**body, "workflow_file": "../server.log"}
        )
        assert escape.status_code == 403
        big = http.post(
            "/api/v1/pipelines", headers=HEADERS, content=b"{" + b" " * 2_000_000 + b"}"
        )
        assert big.status_code == 413


def test_after_a_restart_the_running_pipeline_comes_back_with_its_id(server, pipeline):
    # uvicorn shuts down gracefully, then re-raises SIGTERM: -15 is a clean exit here.
    assert server.stop() in (0, -signal.SIGTERM), server.tail()
    server.start()
    with server.client() as http:
        status = server.wait_for(
            lambda: (s := http.get(f"/api/v1/pipelines/{pipeline}").json())["frames"] > 0 and s,
            what="the restored pipeline running",
        )
        assert (
            status["id"] == pipeline
            and status["state"] == "running"
            and status["desired_state"] == "running"
        )
        terminated = http.post(f"/api/v1/pipelines/{pipeline}/terminate", headers=HEADERS).json()
        assert terminated["state"] == "terminated"
        assert http.delete(f"/api/v1/pipelines/{pipeline}", headers=HEADERS).status_code == 204
        assert http.get("/api/v1/pipelines").json() == []


BIN = Path(sys.executable).parent


def test_schemathesis_finds_no_server_error(tmp_path):
    web = WebServer(
        tmp_path,
        free_port(),
        "services.pipelines.download_retries=0",
        "services.pipelines.download_timeout_s=2",
        "services.pipelines.max_pipelines=2",
    )
    web.write_workflow(
        "blur.json",
        {
            "version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [],
            "outputs": [],
        },
    )
    web.start()
    try:
        result = subprocess.run(
            [
                str(BIN / "schemathesis"),
                "run",
                f"{web.base}/openapi.json",
                "--checks",
                "not_a_server_error",
                "-H",
                f"X-API-Key: {HEADERS['X-API-Key']}",
                "--max-examples",
                "15",
                "--request-timeout",
                "60",
                "--generation-deterministic",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:] + web.tail()
        assert "not_a_server_error" in result.stdout or "passed" in result.stdout.lower()
    finally:
        web.stop()


def test_an_installed_web_plugin_is_mounted_and_listed(tmp_path):
    target = tmp_path / "site"
    fixture = tmp_path / "src"
    # setuptools builds in the source tree: build a copy, keep the repository clean
    shutil.copytree(REPO / "tests" / "webapp" / "fixtures" / "coral_web_example", fixture)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(fixture),
        ],
        check=True,
        timeout=300,
    )
    web = WebServer(
        tmp_path / "web",
        free_port(),
        "services.ui.mode=plugin",
        "services.ui.plugin=example_ui",
        env={"PYTHONPATH": str(target)},
    )
    web.start()
    try:
        with web.client() as http:
            plugins = {p["name"]: p for p in http.get("/api/v1/system/plugins").json()}
            assert plugins["example_ui"]["loaded"] and plugins["example_ui"]["routes"] == 1
            assert (
                plugins["broken_ui"]["loaded"] is False
                and "RuntimeError" in plugins["broken_ui"]["error"]
            )
            assert http.get("/plugins/example_ui/hello").json() == {"hello": "from a plugin"}
            assert http.get("/plugins/example_ui/static/logo.txt").text.strip() == "example static"
            assert "Example plugin UI" in http.get("/").text
            info = http.get("/api/v1/system/info").json()
            assert {"example_ui", "broken_ui"} <= {p["name"] for p in info["plugins"]["web"]}
        listed = subprocess.run(
            [str(BIN / "coral-runtime"), "plugins", "list", "--json", "--no-blocks", "--no-env"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(target)},
            timeout=120,
            check=True,
        )
        assert "example_ui" in listed.stdout
    finally:
        web.stop()
