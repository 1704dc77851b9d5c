"""A real ``coral-runtime web serve`` on loopback for acceptance, browser and load runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from coral_inference.webapp.auth import hash_key

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "examples" / "runtime_web.yaml"
API_KEY = "acceptance-key-0042"
HEADERS = {"X-API-Key": API_KEY}


def detect_and_record_workflow() -> dict:
    """The demo detector, boxes drawn, a continuous recording in 3 s segments."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "coral/object_detection_model@v1",
                "name": "detect",
                "images": "$inputs.image",
                "model": "coral-demo",
                "confidence": 0.4,
            },
            {
                "type": "roboflow_core/bounding_box_visualization@v1",
                "name": "boxes",
                "image": "$inputs.image",
                "predictions": "$steps.detect.predictions",
            },
            {
                "type": "coral/video_recorder@v1",
                "name": "record",
                "image": "$steps.boxes.image",
                "mode": "continuous",
                "output_directory": "acceptance",
                "segment_seconds": 3,
                "preset": "ultrafast",
            },
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"},
            {"type": "JsonField", "name": "annotated", "selector": "$steps.boxes.image"},
        ],
    }


class WebServer:
    """``coral-runtime web serve -c examples/runtime_web.yaml`` rooted in ``root`` on ``port``."""

    def __init__(self, root: Path, port: int, *overrides: str, env: dict[str, str] | None = None):
        self.root = Path(root)
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.overrides = [
            f"storage.root={root / 'var'}",
            f"storage.recordings={root / 'var/recordings'}",
            f"storage.results={root / 'var/results'}",
            f"services.pipelines.database={root / 'var/pipelines.sqlite3'}",
            f"services.pipelines.workflows_root={root / 'workflows'}",
            f"services.pipelines.videos_dir={root / 'var/videos'}",
            # Test videos live in pytest's temporary folders, siblings of root (sources_policy).
            f"services.pipelines.sources_roots=[{root.parent}]",
            f'services.auth.api_key_hashes=["{hash_key(API_KEY)}"]',
            "services.streams.host_addresses=[127.0.0.1]",
            "services.monitoring.poll_interval_s=1",
            "services.monitoring.min_free_bytes=0",
            *overrides,
        ]
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self.log = self.root / "server.log"

    def write_workflow(self, name: str, workflow: dict) -> str:
        (self.root / "workflows").mkdir(parents=True, exist_ok=True)
        (self.root / "workflows" / name).write_text(json.dumps(workflow))
        return name

    def start(self, timeout: float = 180.0) -> WebServer:
        cli = Path(sys.executable).parent / "coral-runtime"
        command = [
            str(cli),
            "web",
            "serve",
            "-c",
            str(EXAMPLE_CONFIG),
            "--no-env",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        for item in self.overrides:
            command += ["--set", item]
        env = {**os.environ, "DISABLE_VERSION_CHECK": "True", **self.env}
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"web serve exited with {self.process.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"web serve not ready within {timeout} s:\n{self.tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful: pipelines stopped, kept for the next start); SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=kwargs.pop("timeout", 120), **kwargs)

    def wait_for(
        self, predicate, timeout: float = 120.0, interval: float = 0.5, what: str = "condition"
    ):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(
            f"{what} not reached within {timeout} s (last: {last!r})\n{self.tail()}"
        )
