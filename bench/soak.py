"""Soak: two cameras recording through the control plane, a viewer and pollers, for a long time.

    .venv/bin/python bench/soak.py --minutes 30 --json soak.json --markdown soak.md

Starts a real ``coral-runtime web serve`` on loopback with two pipelines that record
their camera (``coral/video_recorder@v1`` on the input image, 10 s segments), one
aiortc viewer on the first pipeline's preview, and ``--pollers`` clients polling the
API (pipelines, recordings, metrics, readiness) once a second each. Every
``--sample-s`` it records, for the server and all its child processes together: RSS,
threads, open file descriptors and processes, plus the files and bytes under the
recordings folder and the pipelines' states. At the end every recording is decoded and
each sampled frame is classified by camera; a file holding frames of both cameras
fails the run.

Cameras (``--cameras``):
* ``rtsp`` — two GStreamer RTSP servers on loopback (``tests/reliability/rtsp_camera.py``,
  run by the system ``python3`` with Debian's ``gir1.2-gst-rtsp-server-1.0``): a ball
  moving over a red and over a blue background, live H.264 — the real thing.
* ``files`` — a red and a blue generated clip, replayed at their frame rate; the
  pipelines use ``services.pipelines.restart=always``, so a clip that ends starts again.
* ``auto`` (default) — ``rtsp`` when GStreamer's RTSP server is importable, else ``files``.

Not part of the test run: a soak takes as long as you ask it to. The result says how
long it actually ran; a 3-minute run is a smoke test of the soak, not a soak.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402
from tests.reliability.rtsp_camera import (  # noqa: E402
    COLOURS_BGR,
    RtspCamera,
    colour_of,
    unavailable_reason,
)
from tests.webapp.server import HEADERS, WebServer  # noqa: E402

COLOURS = {"cam-a": "red", "cam-b": "blue"}  # each camera's background colour
CAMERAS = {name: COLOURS_BGR[colour] for name, colour in COLOURS.items()}  # as BGR
FPS = 10
SIZE = (640, 480)


def recording_workflow() -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "coral/video_recorder@v1",
                "name": "record",
                "image": "$inputs.image",
                "mode": "continuous",
                "output_directory": "soak",
                "segment_seconds": 10,
                "preset": "ultrafast",
            }
        ],
        "outputs": [{"type": "JsonField", "name": "frame", "selector": "$inputs.image"}],
    }


# ---------------------------------------------------------------------------- cameras


def write_clip(path: Path, bgr: tuple[int, int, int], seconds: float) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for i in range(int(seconds * FPS)):
            frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
            frame[:] = bgr
            x = (i * 7) % (SIZE[0] - 80)
            frame[200:280, x : x + 80] = 255  # something moves, so the encoder has work
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class RtspCameras:
    """The two cameras as GStreamer RTSP servers (``tests/reliability/rtsp_camera.py``)."""

    def __init__(self) -> None:
        self.cameras = {name: RtspCamera(colour, free_port()) for name, colour in COLOURS.items()}

    def start(self) -> dict[str, str]:
        for camera in self.cameras.values():
            camera.start()
        return {name: camera.url for name, camera in self.cameras.items()}

    def stop(self) -> None:
        for camera in self.cameras.values():
            camera.kill()


# ---------------------------------------------------------------------------- load


class Pollers:
    """``n`` clients polling the API once a second each; counts answers by status."""

    PATHS = ("/api/v1/pipelines", "/api/v1/recordings", "/metrics", "/readyz", "/api/v1/streams")

    def __init__(self, base: str, n: int):
        self.base = base
        self.n = n
        self.stop = threading.Event()
        self.by_status: dict[str, int] = {}
        self.slowest_s = 0.0
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.base, headers=HEADERS, timeout=30) as http:
            i = index
            while not self.stop.wait(1.0):
                path = self.PATHS[i % len(self.PATHS)]
                i += 1
                started = time.monotonic()
                try:
                    status = str(http.get(path).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self._lock:
                    self.by_status[status] = self.by_status.get(status, 0) + 1
                    self.slowest_s = max(self.slowest_s, time.monotonic() - started)

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(35)


class Viewer:
    """One aiortc viewer in its own process (tests/media/webrtc_client.py), back if it drops."""

    def __init__(self, base: str, pipeline_id: str):
        self.base = base
        self.pipeline_id = pipeline_id
        self.process: subprocess.Popen | None = None
        self.joins = 0

    def ensure(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "media" / "webrtc_client.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        offer = json.loads(self.process.stdout.readline())
        answer = httpx.post(
            f"{self.base}/api/v1/pipelines/{self.pipeline_id}/webrtc",
            json=offer,
            headers=HEADERS,
            timeout=30,
        )
        if answer.status_code != 200:
            self.process.kill()
            raise RuntimeError(f"viewer not answered: {answer.status_code} {answer.text[:200]}")
        self.process.stdin.write(json.dumps(answer.json()) + "\n")
        self.process.stdin.flush()
        self.joins += 1

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# ---------------------------------------------------------------------------- measurement


@dataclass
class Sample:
    t_s: float
    rss_mb: float  # summed over processes: pages shared by forked workers count once per process
    pss_mb: float  # proportional set size: shared pages split between the processes sharing them
    uss_mb: float  # unique set size: pages only these processes hold (what a leak grows)
    threads: int
    fds: int
    processes: int
    files: int
    bytes_mb: float
    states: dict[str, str] = field(default_factory=dict)
    load1: float = 0.0  # the machine's 1-minute load average (it is shared with other work)


def process_tree(pid: int) -> tuple[float, float, float, int, int, int]:
    import psutil

    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0, 0.0, 0, 0, 0
    rss = pss = uss = threads = fds = 0
    alive = 0
    for member in members:
        try:
            memory = member.memory_full_info()
            rss += memory.rss
            pss += getattr(memory, "pss", memory.rss)
            uss += getattr(memory, "uss", memory.rss)
            threads += member.num_threads()
            fds += member.num_fds()
            alive += 1
        except psutil.Error:
            continue
    return rss / 2**20, pss / 2**20, uss / 2**20, threads, fds, alive


def recording_files(root: Path) -> tuple[int, float]:
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files if p.exists()) / 2**20


def classify_recordings(root: Path, every: int = 5) -> dict:
    """Per MP4: how many sampled frames look like each camera; a file with both mixes sources."""
    import av

    report: dict[str, dict[str, int]] = {}
    unreadable = []
    by_colour = {colour: name for name, colour in COLOURS.items()}
    for path in sorted(root.rglob("*.mp4")):
        counts = {name: 0 for name in CAMERAS} | {"unknown": 0}
        try:
            with av.open(str(path)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    if i % every:
                        continue
                    colour = colour_of(frame.to_ndarray(format="bgr24")[:150])  # background rows
                    counts[by_colour.get(colour, "unknown")] += 1
        except Exception as exc:  # a segment cut by the stop, a file being written
            unreadable.append(f"{path.name}: {type(exc).__name__}")
            continue
        report[str(path.relative_to(root))] = counts
    mixed = {p: c for p, c in report.items() if sum(1 for n in CAMERAS if c[n]) > 1}
    unknown = sum(c["unknown"] for c in report.values())
    return {
        "files": len(report),
        "mixed": mixed,
        "unreadable": unreadable,
        "unknown_frames": unknown,
    }


def quartile_drift(samples: list[Sample], key: str) -> dict[str, float]:
    values = [getattr(s, key) for s in samples]
    if len(values) < 4:
        return {
            "first": values[0] if values else 0.0,
            "last": values[-1] if values else 0.0,
            "delta": 0.0,
        }
    q = len(values) // 4
    first, last = statistics.median(values[:q]), statistics.median(values[-q:])
    return {"first": round(first, 2), "last": round(last, 2), "delta": round(last - first, 2)}


# ---------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict:
    root = Path(args.root or tempfile.mkdtemp(prefix="coral-soak-"))
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    kind = args.cameras
    if kind == "auto":
        kind = "rtsp" if unavailable_reason() is None else "files"
    cameras = RtspCameras() if kind == "rtsp" else None
    if cameras is not None:
        sources = cameras.start()
    else:
        sources = {}
        for name, bgr in CAMERAS.items():
            clip = media / f"{name}.mp4"
            write_clip(clip, bgr, args.clip_seconds)
            sources[name] = str(clip)
    server = WebServer(
        root / "web",
        free_port(),
        f"services.pipelines.sources_roots=[{media}]",
        "services.pipelines.restart=always",
        # A looping clip ends every --clip-seconds: restart at once, every time, not with backoff.
        "services.pipelines.restart_backoff_s=0.5",
        "services.pipelines.restart_backoff_max_s=1",
        "services.pipelines.restart_max_per_hour=100000",
        "services.monitoring.poll_interval_s=5",
        "recording.retention.max_age_hours=1",
    )
    server.write_workflow("record.json", recording_workflow())
    started_at = time.time()
    server.start()
    pollers = Pollers(server.base, args.pollers)
    viewer: Viewer | None = None
    samples: list[Sample] = []
    viewer_errors = 0
    try:
        ids = {}
        # A worker compiles its workflow before create answers: minutes on a busy small box.
        with server.client(timeout=400) as http:
            for name, source in sources.items():
                response = http.post(
                    "/api/v1/pipelines",
                    headers=HEADERS,
                    json={
                        "name": name,
                        "workflow_file": "record.json",
                        "source": source,
                        "max_fps": FPS,
                    },
                )
                if response.status_code != 201:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
                ids[name] = response.json()["id"]
            server.wait_for(
                lambda: all(
                    http.get(f"/api/v1/pipelines/{i}").json()["frames"] > 0 for i in ids.values()
                ),
                timeout=400,
                what="both cameras running",
            )
            viewer = Viewer(server.base, ids["cam-a"])
            pollers.start()
            begin = time.monotonic()
            end = begin + args.minutes * 60
            recordings = server.root / "var" / "recordings"
            while True:
                try:
                    viewer.ensure()
                except Exception as exc:  # noqa: BLE001 — counted and reported, the soak goes on
                    viewer_errors += 1
                    print(f"viewer: {exc}", file=sys.stderr)
                assert server.process is not None
                rss, pss, uss, threads, fds, processes = process_tree(server.process.pid)
                files, size = recording_files(recordings)
                states = {}
                for name, pid in ids.items():
                    try:
                        states[name] = http.get(f"/api/v1/pipelines/{pid}").json()["state"]
                    except httpx.HTTPError as exc:
                        states[name] = type(exc).__name__
                sample = Sample(
                    round(time.monotonic() - begin, 1),
                    round(rss, 1),
                    round(pss, 1),
                    round(uss, 1),
                    threads,
                    fds,
                    processes,
                    files,
                    round(size, 1),
                    states,
                    round(os.getloadavg()[0], 2),
                )
                samples.append(sample)
                print(json.dumps(asdict(sample)), flush=True)
                if time.monotonic() >= end:
                    break
                time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
    finally:
        # Every step runs even when one fails: a server left behind would skew the next run.
        steps = [
            pollers.close,  # before the server stops, so no poll meets a closed port
            server.stop,
            *([viewer.close] if viewer else []),
            *([cameras.stop] if cameras else []),
        ]
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 — reported, the others still run
                print(f"cleanup {step.__qualname__}: {exc!r}", file=sys.stderr)
    ran_s = time.time() - started_at
    steady = [s for s in samples if s.states and all(v == "running" for v in s.states.values())]
    mixing = classify_recordings(server.root / "var" / "recordings")
    result = {
        "cameras": kind,
        "asked_minutes": args.minutes,
        "measured_minutes": round(samples[-1].t_s / 60, 2) if samples else 0.0,
        "wall_minutes_including_start": round(ran_s / 60, 2),
        "pollers": args.pollers,
        "poll_answers": pollers.by_status,
        "slowest_poll_s": round(pollers.slowest_s, 2),
        "viewer_joins": viewer.joins if viewer else 0,
        "viewer_errors": viewer_errors,
        "drift": {
            key: quartile_drift(samples, key)
            for key in ("rss_mb", "pss_mb", "uss_mb", "threads", "fds", "processes")
        },
        # Only samples where every camera runs: restarts of a looping clip swing the totals.
        "drift_steady": {
            key: quartile_drift(steady, key)
            for key in ("uss_mb", "pss_mb", "threads", "fds", "processes")
        },
        "recordings": mixing,
        "samples": [asdict(s) for s in samples],
    }
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return result


def markdown(result: dict) -> str:
    rec = result["recordings"]
    lines = [
        f"Soak: {result['cameras']} cameras, asked {result['asked_minutes']} min, "
        f"measured {result['measured_minutes']} min "
        f"(wall {result['wall_minutes_including_start']} min with start-up); "
        f"{result['pollers']} pollers, viewer joins {result['viewer_joins']} "
        f"(errors {result['viewer_errors']}).",
        "Server and all its child processes (workers, forkserver) together.",
        "",
        "| t (s) | RSS MB | PSS MB | USS MB | threads | fds | processes | files | MB | load | states |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    samples = result["samples"]
    step = max(1, len(samples) // 20)
    shown = samples[::step]
    if samples and shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    for s in shown:
        states = ", ".join(f"{k}={v}" for k, v in s["states"].items())
        lines.append(
            f"| {s['t_s']} | {s['rss_mb']} | {s['pss_mb']} | {s.get('uss_mb', '')} | "
            f"{s['threads']} | {s['fds']} | "
            f"{s['processes']} | {s['files']} | {s['bytes_mb']} | {s.get('load1', '')} | {states} |"
        )
    lines += ["", "Drift, median of the last quarter minus median of the first quarter:", ""]
    for key, d in result["drift"].items():
        lines.append(f"- {key}: {d['first']} → {d['last']} ({d['delta']:+})")
    lines += ["", "The same over samples where both cameras were running:", ""]
    for key, d in result["drift_steady"].items():
        lines.append(f"- {key}: {d['first']} → {d['last']} ({d['delta']:+})")
    mixed = f" {json.dumps(rec['mixed'])}" if rec["mixed"] else ""
    lines += [
        "",
        f"Recordings decoded: {rec['files']}; files mixing the two cameras: "
        f"{len(rec['mixed'])}{mixed}; unreadable: {len(rec['unreadable'])}; "
        f"sampled frames of no camera's colour: {rec.get('unknown_frames', 0)}.",
        f"Poll answers: {json.dumps(result['poll_answers'])}; "
        f"slowest poll {result['slowest_poll_s']} s.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=15.0, help="Seconds between samples.")
    parser.add_argument("--cameras", choices=["auto", "rtsp", "files"], default="auto")
    parser.add_argument(
        "--clip-seconds", type=float, default=30.0, help="Length of each file camera's clip."
    )
    parser.add_argument("--pollers", type=int, default=4)
    parser.add_argument("--root", type=Path, help="Working folder (default: a new temporary one).")
    parser.add_argument(
        "--keep", action="store_true", help="Keep the working folder (recordings, logs)."
    )
    parser.add_argument("--json", type=Path, help="Write the full result here.")
    parser.add_argument("--markdown", type=Path, help="Write a summary table here.")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    result = run(args)
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        args.markdown.write_text(text)
    return 1 if result["recordings"]["mixed"] else 0


if __name__ == "__main__":
    sys.exit(main())
