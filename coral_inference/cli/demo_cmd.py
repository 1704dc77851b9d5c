"""``coral-runtime demo``: the whole appliance on embedded defaults, offline.

The bundled demo detector runs on a generated demo video through the
line-counting example workflow (tracking, line counter, recorder, metrics, live
preview); the dashboard serves it on loopback. The demo is an ordinary client of
the control plane: it starts the web app, then asks the API for the pipeline, and
starts it again each time the video ends.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import typer

from coral_inference.cli.common import (
    ConfigOption,
    NoEnvOption,
    SetOption,
    err_console,
    load_or_exit,
    pin_control_plane_or_exit,
)
from coral_inference.runtime import init, shutdown
from coral_inference.server.launcher import configure_logging, tame_upstream_loggers
from coral_inference.webapp.auth import generate_key, hash_key

DEMO_ROOT = Path("var/coral/demo")
DEMO_WORKFLOW = "line_counting.json"
DEMO_FPS = 15


def demo_overrides(root: Path, workflows_root: Path, port: int, key_digest: str) -> list[str]:
    """The demo's embedded defaults, applied over the user's config like ``--set``."""
    return [
        f"storage.root={root}",
        f"storage.recordings={root / 'recordings'}",
        f"storage.results={root / 'results'}",
        f"services.pipelines.database={root / 'pipelines.sqlite3'}",
        f"services.pipelines.workflows_root={workflows_root}",
        f"services.pipelines.videos_dir={root / 'videos'}",
        "services.pipelines.restore_on_start=false",
        "services.http.host=127.0.0.1",
        f"services.http.port={port}",
        f"services.auth.api_key_hashes=[{key_digest}]",
        "patches.coral_model_registry=true",
        f"services.monitoring.disk_quota_bytes={2 * 1024**3}",
    ]


def find_examples() -> Path:
    """The example workflows of the checkout this package runs from."""
    candidates = [
        Path.cwd() / "examples" / "workflows",
        Path(__file__).resolve().parents[2] / "examples" / "workflows",
    ]
    for candidate in candidates:
        if (candidate / DEMO_WORKFLOW).is_file():
            return candidate
    raise typer.BadParameter(
        f"examples/workflows/{DEMO_WORKFLOW} not found: run the demo from a Coral checkout"
    )


def demo(
    port: int = typer.Option(9100, "--port", min=1, max=65535, help="Dashboard port on 127.0.0.1."),
    seconds: float = typer.Option(
        60.0,
        "--seconds",
        min=5,
        help="Length of the generated demo video (it restarts at the end).",
    ),
    once: bool = typer.Option(
        False, "--once", help="Stop after one pass over the video (tests, CI)."
    ),
    root: Path = typer.Option(
        DEMO_ROOT, "--root", help="Where the demo keeps its video, recordings and database."
    ),
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
) -> None:
    """Run detection, tracking, counting, recording, metrics and live preview on a demo video, with the dashboard."""
    # heavy: uvicorn (~0.6 s); keeps `coral-runtime --help` from loading it
    import uvicorn

    # coral_inference.demo's scenes import OpenCV (cv2)
    from coral_inference.demo import write_demo_video

    # create_web_app imports the FastAPI app (fastapi, starlette, OpenCV)
    from coral_inference.webapp import create_web_app

    started = time.monotonic()
    root = root.resolve()
    # The console shows Coral's lines; upstream warnings and per-request client lines go to the log.
    configure_logging(root / "demo.log")
    workflows = find_examples()
    key = generate_key()
    loaded = load_or_exit(
        config, demo_overrides(root, workflows, port, hash_key(key)) + list(set_), no_env
    )
    video = root / "videos" / f"demo-{int(seconds)}s.mp4"
    if not video.exists():
        err_console.print(f"generating the demo video ({seconds:.0f} s of synthetic traffic) …")
        video.parent.mkdir(parents=True, exist_ok=True)
        truth = write_demo_video(
            video.with_suffix(".part.mp4"), seconds=seconds, fps=DEMO_FPS, seed=2024
        )
        video.with_suffix(".part.mp4").rename(video)
        truth.save(video.with_suffix(".json"))
    # The demo's pipeline list starts empty each time: the database is the demo's own.
    Path(loaded.descriptor.services.pipelines.database).unlink(missing_ok=True)
    pin_control_plane_or_exit(loaded)
    context = init(loaded, source="coral-runtime demo")
    url = f"http://127.0.0.1:{port}/"
    app = create_web_app(context=context)
    tame_upstream_loggers()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    )
    driver = threading.Thread(
        target=_drive,
        args=(server, url, key, video, once, started),
        name="coral-demo-driver",
        daemon=True,
    )
    driver.start()
    try:
        server.run()
    finally:
        shutdown()


def _drive(server: Any, url: str, key: str, video: Path, once: bool, started: float) -> None:
    """Start the demo pipeline through the API and restart it whenever the video ends."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.1)
    headers = {"X-API-Key": key}
    # max_fps at the video's own rate: the file plays like a live camera, not as fast as the CPU allows.
    spec = {
        "name": "demo",
        "workflow_file": DEMO_WORKFLOW,
        "source": str(video),
        "preview_output": "annotated",
        "max_fps": DEMO_FPS,
    }
    with httpx.Client(base_url=f"{url}api/v1", headers=headers, timeout=120) as client:
        passes = 0
        while not server.should_exit:
            response = client.post("/pipelines", json=spec)
            if response.status_code >= 400:
                err_console.print(
                    f"the demo pipeline did not start: {response.status_code} {response.text}",
                    markup=False,
                )
                server.should_exit = True
                return
            pipeline = response.json()
            pipeline_id = pipeline["id"]
            if passes == 0:
                _wait_for_frames(client, pipeline_id, server)
                err_console.print(
                    f"\n[bold]Coral demo[/bold] — dashboard with live detections: [bold]{url}#key={key}[/bold]  "
                    f"(ready in {time.monotonic() - started:.0f} s)\n"
                    f"  API key for this run: {key}  (API docs: {url}docs, metrics: {url}metrics)\n"
                    f"  recordings: {video.parent.parent / 'recordings'}   Ctrl-C stops.\n"
                )
            state = _wait_until_ended(client, pipeline_id, server)
            passes += 1
            if once or state == "failed":
                if state == "failed":
                    err_console.print(
                        json.dumps(client.get(f"/pipelines/{pipeline_id}").json(), indent=2),
                        markup=False,
                    )
                server.should_exit = True
                return
            client.delete(f"/pipelines/{pipeline_id}")


def _wait_for_frames(client: httpx.Client, pipeline_id: str, server: Any) -> None:
    while not server.should_exit:
        status = client.get(f"/pipelines/{pipeline_id}").json()
        if status.get("frames") or status.get("state") in {"failed", "finished"}:
            return
        time.sleep(0.5)


def _wait_until_ended(client: httpx.Client, pipeline_id: str, server: Any) -> str:
    while not server.should_exit:
        state = client.get(f"/pipelines/{pipeline_id}").json().get("state")
        if state in {"finished", "failed", "terminated"}:
            return state
        time.sleep(1)
    return "terminated"
