"""The README's demo command: the dashboard comes up with live detections on the demo video."""

import os
import subprocess
import sys
import time

import httpx

from tests.conftest import free_port


def test_demo_serves_the_dashboard_with_a_running_detection_pipeline(tmp_path, require_inference):
    port = free_port()
    env = {**os.environ, "COLUMNS": "200"}
    repo = os.getcwd()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coral_inference.cli.main",
            "demo",
            "--port",
            str(port),
            "--seconds",
            "8",
            "--once",
            "--root",
            str(tmp_path),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=repo,
    )
    try:
        banner = ""
        deadline = time.monotonic() + 400
        while "dashboard with live detections" not in banner and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            banner += line
        assert f"http://127.0.0.1:{port}/" in banner, banner[-3000:]
        base = f"http://127.0.0.1:{port}"
        assert "<video" in httpx.get(base + "/", timeout=10).text
        pipelines = httpx.get(base + "/api/v1/pipelines", timeout=10).json()
        assert pipelines[0]["name"] == "demo" and pipelines[0]["frames"] > 0, pipelines
        rest = process.communicate(timeout=300)[1]
        assert process.returncode == 0, (banner + rest)[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
