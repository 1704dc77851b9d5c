"""Load on the web control plane: N clients polling status and health while a pipeline runs.

    .venv/bin/python bench/bench_web.py [--clients 50] [--seconds 30] [--json out.json]

Starts a real ``coral-runtime web serve`` on loopback, starts the demo detector on
a demo video with no frame-rate cap, measures the pipeline's frame rate alone,
then again while ``--clients`` concurrent clients poll
``GET /api/v1/pipelines/{id}`` and ``GET /healthz`` for ``--seconds``. Reports
request latency percentiles, errors, and the pipeline's fps with and without the
load (the ratio is what BENCHMARKS.md records: it depends on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402
from tests.webapp.server import HEADERS, WebServer, detect_and_record_workflow  # noqa: E402


def pipeline_fps(http: httpx.Client, pipeline_id: str, seconds: float) -> float:
    """Frames per second over ``seconds``, from the status frame counter."""
    start = http.get(f"/api/v1/pipelines/{pipeline_id}").json()["frames"]
    t0 = time.monotonic()
    time.sleep(seconds)
    end = http.get(f"/api/v1/pipelines/{pipeline_id}").json()["frames"]
    return (end - start) / (time.monotonic() - t0)


async def poll_raw(
    base: str, status_path: str, clients: int, seconds: float, collect: list | None = None
) -> dict:
    """The same load from a minimal HTTP/1.1 keep-alive client (asyncio streams, no httpx).

    httpx spends several times the server's CPU per request; on a 2-core box that client
    competes with what it measures. This one writes a fixed request and reads the response
    by its Content-Length, so the latencies are mostly the server's.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def client_loop(n: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        requests = [
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
            for path in (status_path, "/healthz")
        ]
        i = n
        try:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                writer.write(requests[i % 2])
                i += 1
                head = await reader.readuntil(b"\r\n\r\n")
                code = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if code != "200":
                    errors[code] = errors.get(code, 0) + 1
                    continue
                latencies.append(time.perf_counter() - t0)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(client_loop(n) for n in range(clients)))
    if collect is not None:
        collect.extend(latencies)
    return _summary(latencies, errors, seconds)


def _summary(latencies: list[float], errors: dict[str, int], seconds: float) -> dict:
    latencies.sort()

    def pct(q: float) -> float:
        return (
            1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]
            if latencies
            else float("nan")
        )

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan"),
    }


async def poll(
    base: str, status_path: str, clients: int, seconds: float, collect: list | None = None
) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(http: httpx.AsyncClient, n: int) -> None:
        paths = [status_path, "/healthz"]
        i = n
        while time.monotonic() < deadline:
            path = paths[i % 2]
            i += 1
            t0 = time.perf_counter()
            try:
                response = await http.get(path)
                if response.status_code != 200:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - t0)

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        await asyncio.gather(*(client_loop(http, n) for n in range(clients)))
    if collect is not None:
        collect.extend(latencies)
    return _summary(latencies, errors, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument(
        "--idle",
        action="store_true",
        help="No pipeline: the same load on an idle server (the API's own cost).",
    )
    parser.add_argument(
        "--workers",
        action="store_true",
        help="Issue 11 in one run: idle p99 vs one pipeline's, fps alone vs loaded, "
        "two pipelines vs one, POST to first frame, memory per added pipeline.",
    )
    parser.add_argument(
        "--isolation",
        choices=["process", "thread"],
        default="process",
        help="services.pipelines.isolation of the server (--workers).",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A configuration override for the server (--workers), e.g. "
        "services.pipelines.worker_session=false for a before/after run.",
    )
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="Load generator (--workers): httpx clients as before, or a minimal keep-alive "
        "HTTP/1.1 client that leaves the cores to the server.",
    )
    parser.add_argument(
        "--alternate",
        type=int,
        default=4,
        help="Alternations of alone/loaded and one/two windows (--workers).",
    )
    parser.add_argument(
        "--window", type=float, default=8.0, help="Seconds of one window (--workers)."
    )
    parser.add_argument(
        "--pipeline-cpus",
        type=lambda v: [int(c) for c in v.split(",")],
        help="cpu_affinity of the pipelines the bench creates, e.g. 1 or 2,3 (--workers).",
    )
    parser.add_argument(
        "--client-cpus",
        type=lambda v: [int(c) for c in v.split(",")],
        help="Run the load generator on these cores only, e.g. the control plane's (--workers): "
        "it stands in for clients on other machines, whose CPU a pipeline does not share.",
    )
    parser.add_argument(
        "--video", type=Path, help="Demo clip to use, written there first if missing (--workers)."
    )
    args = parser.parse_args()
    if args.idle:
        return idle(args)
    if args.workers:
        return workers(args)

    from coral_inference.demo.scenes import write_demo_video

    with tempfile.TemporaryDirectory(prefix="coral-bench-web-") as tmp:
        root = Path(tmp)
        video = root / "demo.mp4"
        write_demo_video(video, seconds=150, fps=15)
        web = WebServer(root / "web", free_port())
        web.write_workflow("detect.json", detect_and_record_workflow())
        web.start()
        try:
            with web.client() as http:
                created = http.post(
                    "/api/v1/pipelines",
                    headers=HEADERS,
                    json={"workflow_file": "detect.json", "source": str(video)},
                )
                created.raise_for_status()
                pid = created.json()["id"]
                web.wait_for(
                    lambda: http.get(f"/api/v1/pipelines/{pid}").json()["frames"] > 30,
                    what="warm pipeline",
                )
                fps_alone = pipeline_fps(http, pid, args.baseline_seconds)
                loaded: dict = {}
                load_thread = threading.Thread(
                    target=lambda: loaded.update(
                        asyncio.run(
                            poll(web.base, f"/api/v1/pipelines/{pid}", args.clients, args.seconds)
                        )
                    )
                )
                load_thread.start()
                time.sleep(1.0)  # let every client connect before counting frames
                fps_loaded = pipeline_fps(http, pid, args.seconds - 2.0)
                load_thread.join()
                state = http.get(f"/api/v1/pipelines/{pid}").json()["state"]
        finally:
            web.stop()
    result = {
        "clients": args.clients,
        "seconds": args.seconds,
        "pipeline_state_after": state,
        "pipeline_fps_alone": round(fps_alone, 2),
        "pipeline_fps_under_load": round(fps_loaded, 2),
        "fps_ratio": round(fps_loaded / fps_alone, 3) if fps_alone else None,
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in loaded.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if not loaded.get("errors") and state == "running" else 1


class CpuMeter:
    """CPU cores used per party between ``start`` and ``stop``: the web process, its children
    (forkserver and pipeline workers) and this process (the load generator's clients)."""

    def __init__(self, pid: int):
        import psutil

        self.web = psutil.Process(pid)
        self.me = psutil.Process()
        self.began: tuple[float, dict[str, float]] | None = None

    def _sample(self) -> dict[str, float]:
        import psutil

        def used(proc) -> float:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                return 0.0
            return t.user + t.system

        children = 0.0
        for child in self.web.children(recursive=True):
            children += used(child)
        return {"web": used(self.web), "workers": children, "load_generator": used(self.me)}

    def start(self) -> None:
        self.began = (time.monotonic(), self._sample())

    def stop(self) -> dict[str, float]:
        assert self.began is not None
        t0, before = self.began
        after, wall = self._sample(), time.monotonic() - t0
        cores = {k: round((after[k] - before[k]) / wall, 2) for k in after}
        cores["total"] = round(sum(cores.values()), 2)
        return cores


def memory(pid: int) -> dict:
    """RSS and PSS (pages shared with the forkserver and siblings split) of a process tree."""
    import psutil

    root = psutil.Process(pid)
    rss = pss = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1)}


def first_frame(http: httpx.Client, body: dict) -> tuple[str, float]:
    began = time.monotonic()
    created = http.post("/api/v1/pipelines", headers=HEADERS, json=body)
    created.raise_for_status()
    pid = created.json()["id"]
    while (status := http.get(f"/api/v1/pipelines/{pid}").json())["frames"] == 0:
        if status["state"] in ("failed", "ended", "terminated") or time.monotonic() - began > 600:
            raise RuntimeError(f"no first frame: {json.dumps(status)[:2000]}")
        time.sleep(0.05)
    return pid, time.monotonic() - began


def workers(args: argparse.Namespace) -> int:
    from coral_inference.demo.scenes import write_demo_video

    def load(web: WebServer, path: str, seconds: float, collect: list | None = None) -> dict:
        poller = poll_raw if args.client == "raw" else poll
        return asyncio.run(poller(web.base, path, args.clients, seconds, collect))

    def mean_cores(samples: list[dict[str, float]]) -> dict[str, float]:
        return {k: round(statistics.fmean(s[k] for s in samples), 2) for k in samples[0]}

    with tempfile.TemporaryDirectory(prefix="coral-bench-web-") as tmp:
        root = Path(tmp)
        video = root / "demo.mp4"
        if args.video is not None:  # the same clip for a before/after pair (it takes minutes)
            if not args.video.exists():
                write_demo_video(args.video, seconds=300, fps=15)
            shutil.copyfile(args.video, video)
        else:
            write_demo_video(video, seconds=300, fps=15)
        web = WebServer(
            root / "web",
            free_port(),
            f"services.pipelines.isolation={args.isolation}",
            *args.set,
        )
        web.write_workflow("detect.json", detect_and_record_workflow())
        web.start(timeout=900)
        if args.client_cpus:  # after the server started: it must not inherit the mask
            os.sched_setaffinity(0, args.client_cpus)
        body: dict = {"workflow_file": "detect.json", "source": str(video)}
        if args.pipeline_cpus:
            body["cpu_affinity"] = args.pipeline_cpus
        try:
            with web.client(timeout=900) as http:
                # Inference imported (forkserver preload or web warm-up) before timing.
                web.wait_for(
                    lambda: http.get("/readyz").status_code == 200, timeout=900, what="ready"
                )
                time.sleep(5)
                assert web.process is not None
                server_pid = web.process.pid
                memory_idle = memory(server_pid)
                meter = CpuMeter(server_pid)
                meter.start()
                idle_load = load(web, "/api/v1/pipelines", args.seconds)
                cores_idle_load = meter.stop()
                first, first_s = first_frame(http, body)
                web.wait_for(
                    lambda: http.get(f"/api/v1/pipelines/{first}").json()["frames"] > 30,
                    what="warm",
                )
                memory_one = memory(server_pid)
                # The clip's scenes change the work per frame over time (fps alone moved from 56
                # to 45 within one run), so the conditions alternate in short windows and each
                # ratio compares the sums of its windows: drift falls on both sides alike.
                alone_w, loaded_w, cores_alone_w, cores_loaded_w = [], [], [], []
                latencies: list[float] = []
                errors: dict[str, int] = {}
                for _ in range(args.alternate):
                    meter.start()
                    alone_w.append(pipeline_fps(http, first, args.window))
                    cores_alone_w.append(meter.stop())
                    box: dict = {}
                    thread = threading.Thread(
                        target=lambda box=box: box.update(
                            load(web, f"/api/v1/pipelines/{first}", args.window + 2.0, latencies)
                        )
                    )
                    thread.start()
                    time.sleep(1.0)  # every client connected before frames are counted
                    meter.start()
                    loaded_w.append(pipeline_fps(http, first, args.window))
                    cores_loaded_w.append(meter.stop())
                    thread.join()
                    for code, n in box["errors"].items():
                        errors[code] = errors.get(code, 0) + n
                loaded = _summary(latencies, errors, args.alternate * (args.window + 2.0))
                fps_alone, fps_loaded = statistics.fmean(alone_w), statistics.fmean(loaded_w)
                cores_alone, cores_loaded = mean_cores(cores_alone_w), mean_cores(cores_loaded_w)
                second, second_s = first_frame(http, body)
                web.wait_for(
                    lambda: http.get(f"/api/v1/pipelines/{second}").json()["frames"] > 30,
                    what="warm 2",
                )
                memory_two = memory(server_pid)
                # One vs two, alternating too: the second pipeline paused, then running.
                one_w, two_w, cores_two_w = [], [], []
                for _ in range(args.alternate):
                    http.post(
                        f"/api/v1/pipelines/{second}/pause", headers=HEADERS
                    ).raise_for_status()
                    time.sleep(1.0)
                    one_w.append(pipeline_fps(http, first, args.window))
                    http.post(
                        f"/api/v1/pipelines/{second}/resume", headers=HEADERS
                    ).raise_for_status()
                    time.sleep(1.0)
                    meter.start()
                    t0 = time.monotonic()
                    a0 = http.get(f"/api/v1/pipelines/{first}").json()["frames"]
                    b0 = http.get(f"/api/v1/pipelines/{second}").json()["frames"]
                    time.sleep(args.window)
                    a1 = http.get(f"/api/v1/pipelines/{first}").json()["frames"]
                    b1 = http.get(f"/api/v1/pipelines/{second}").json()["frames"]
                    two_w.append(((a1 - a0) + (b1 - b0)) / (time.monotonic() - t0))
                    cores_two_w.append(meter.stop())
                fps_one, combined = statistics.fmean(one_w), statistics.fmean(two_w)
                cores_two = mean_cores(cores_two_w)
                states = [
                    http.get(f"/api/v1/pipelines/{p}").json()["state"] for p in (first, second)
                ]
        finally:
            web.stop()
    result = {
        "isolation": args.isolation,
        "overrides": args.set,
        "client": args.client,
        "client_cpus": args.client_cpus,
        "pipeline_cpus": args.pipeline_cpus,
        "clients": args.clients,
        "seconds": args.seconds,
        "idle_p99_ms": round(idle_load["p99_ms"], 1),
        "one_pipeline_p99_ms": round(loaded["p99_ms"], 1),
        "idle_p50_ms": round(idle_load["p50_ms"], 1),
        "one_pipeline_p50_ms": round(loaded["p50_ms"], 1),
        "idle_rps": round(idle_load["rps"], 1),
        "one_pipeline_rps": round(loaded["rps"], 1),
        "p99_ratio": round(loaded["p99_ms"] / idle_load["p99_ms"], 2),
        "errors": {**idle_load["errors"], **loaded["errors"]},
        "windows": {"alternations": args.alternate, "seconds": args.window},
        "fps_alone": round(fps_alone, 2),
        "fps_under_load": round(fps_loaded, 2),
        "fps_load_ratio": round(fps_loaded / fps_alone, 3) if fps_alone else None,
        "fps_alone_windows": [round(f, 1) for f in alone_w],
        "fps_under_load_windows": [round(f, 1) for f in loaded_w],
        "one_pipeline_fps": round(fps_one, 2),
        "two_pipelines_combined_fps": round(combined, 2),
        "two_vs_one_ratio": round(combined / fps_one, 3) if fps_one else None,
        "one_vs_two_windows": [[round(a, 1), round(b, 1)] for a, b in zip(one_w, two_w)],
        "post_to_first_frame_s": [round(first_s, 2), round(second_s, 2)],
        "memory_idle": memory_idle,
        "memory_one_pipeline": memory_one,
        "memory_two_pipelines": memory_two,
        "pss_per_added_pipeline_mb": round(memory_two["pss_mb"] - memory_one["pss_mb"], 1),
        "rss_per_added_pipeline_mb": round(memory_two["rss_mb"] - memory_one["rss_mb"], 1),
        "states_after": states,
        # CPU cores each party used (2 cores on the reference box): where the time went.
        "cores_idle_server_under_load": cores_idle_load,
        "cores_pipeline_alone": cores_alone,
        "cores_pipeline_under_load": cores_loaded,
        "cores_two_pipelines": cores_two,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if states == ["running", "running"] else 1


def idle(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="coral-bench-web-") as tmp:
        web = WebServer(Path(tmp) / "web", free_port(), "services.pipelines.restore_on_start=false")
        web.write_workflow(
            "empty.json", {"version": "1.0", "inputs": [], "steps": [], "outputs": []}
        )
        web.start()
        try:
            time.sleep(30)  # the background import of inference is over
            loaded = asyncio.run(poll(web.base, "/api/v1/pipelines", args.clients, args.seconds))
        finally:
            web.stop()
    result = {
        "clients": args.clients,
        "seconds": args.seconds,
        "pipeline": None,
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in loaded.items()},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
