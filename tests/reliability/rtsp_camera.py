"""A real RTSP camera on loopback for tests and benchmarks: GStreamer's RTSP server.

Run as a script by the SYSTEM Python (Debian's ``python3-gi`` and
``gir1.2-gst-rtsp-server-1.0``, installed by ``scripts/dev-env``; the project's venv
has no ``gi``)::

    /usr/bin/python3 tests/reliability/rtsp_camera.py --port 8554 --colour red

serves ``rtsp://127.0.0.1:8554/cam``: a live H.264 stream (``x264enc``, zero latency,
a key frame every second) of a white ball moving over a background of one colour, so
every frame tells which camera it came from. It prints ``serving <url>`` once the port
is bound. Killing the process is a camera outage; starting it again on the same port
is the camera coming back.

From the tests (the project's venv) use ``RtspCamera``::

    camera = RtspCamera("red", port).start()
    ...
    camera.kill()      # outage: SIGKILL, like a power cut
    camera.start()     # back, same port, same URL

``colour_of(frame)`` names the camera colour nearest to a decoded BGR frame.

Only the standard library (and ``gi`` in the script) at module level: the system
Python runs this file, which has neither numpy nor PyAV.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).resolve()
MOUNT = "/cam"
# Background colours (what the decoded frames show), as BGR for OpenCV/PyAV's bgr24 frames.
COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "red": (0, 0, 255),
    "blue": (255, 0, 0),
    "green": (0, 255, 0),
    "yellow": (0, 255, 255),
    "magenta": (255, 0, 255),
    "cyan": (255, 255, 0),
}
_GI_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')"
)


def unavailable_reason() -> str | None:
    """``None`` when this machine can serve RTSP cameras, else why not (for a skip/fail)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", _GI_PROBE], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        return (
            "GStreamer's RTSP server is not importable by the system python3 (scripts/dev-env "
            "installs python3-gi, gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-*): "
            + (probe.stderr.strip().splitlines() or ["?"])[-1]
        )
    return None


def colour_of(frame_bgr: Any, max_distance: float = 150.0) -> str:
    """The camera colour nearest to the mean of a decoded BGR frame (numpy array).

    ``"unknown"`` when no camera colour is within ``max_distance`` (summed over B, G, R):
    a grey frame of a decoder that has not seen a key frame yet is no camera's.
    """
    mean = [float(v) for v in frame_bgr.reshape(-1, 3).mean(axis=0)]
    distances = {
        name: sum(abs(m - c) for m, c in zip(mean, bgr)) for name, bgr in COLOURS_BGR.items()
    }
    name = min(distances, key=lambda n: distances[n])
    return name if distances[name] <= max_distance else "unknown"


class RtspCamera:
    """One camera process on ``127.0.0.1:port``; start, kill and start again at will."""

    def __init__(
        self, colour: str, port: int, *, fps: int = 10, width: int = 640, height: int = 480
    ):
        if colour not in COLOURS_BGR:
            raise ValueError(f"colour {colour!r}: one of {sorted(COLOURS_BGR)}")
        self.colour = colour
        self.port = port
        self.fps = fps
        self.size = (width, height)
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> RtspCamera:
        """Start serving; returns once the port is bound (raises if it is not in time)."""
        if self.alive:
            return self
        command = [
            SYSTEM_PYTHON,
            str(SCRIPT),
            "--port",
            str(self.port),
            "--colour",
            self.colour,
            "--fps",
            str(self.fps),
            "--size",
            f"{self.size[0]}x{self.size[1]}",
        ]
        # The system Python must not pick up the venv's packages.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # a Ctrl-C of the test run does not reach it twice
        )
        self.process = process
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                line = process.stdout.readline()
                if line.startswith("serving"):
                    return self
                if not line:  # EOF: it exited
                    break
            elif process.poll() is not None:
                break
        error = ""
        if process.poll() is not None and process.stderr is not None:
            error = process.stderr.read()[-2000:]
        self.kill()
        raise RuntimeError(f"RTSP camera {self.colour} on port {self.port} did not start: {error}")

    def kill(self) -> None:
        """An outage: SIGKILL, no goodbye to the clients (as when the power goes)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        self.process = None

    stop = kill

    def __enter__(self) -> RtspCamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


# ---------------------------------------------------------------------------- the script


def _serve(port: int, colour: str, fps: int, size: str, bind_timeout: float) -> int:
    import gi  # pyright: ignore[reportMissingImports] - the system python3's, not the venv's

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import (  # pyright: ignore[reportMissingImports]
        GLib,
        Gst,
        GstRtspServer,
    )

    Gst.init(None)
    b, g, r = COLOURS_BGR[colour]
    argb = 0xFF000000 | (r << 16) | (g << 8) | b
    width, height = (int(v) for v in size.split("x"))
    launch = (
        f"( videotestsrc is-live=true pattern=ball background-color={argb} "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    server.get_mount_points().add_factory(MOUNT, factory)
    # A camera that comes back right after an outage may find its port briefly taken.
    deadline = time.monotonic() + bind_timeout
    while server.attach(None) == 0:
        if time.monotonic() > deadline:
            print(f"cannot bind 127.0.0.1:{port}", file=sys.stderr, flush=True)
            return 2
        time.sleep(0.2)
    print(f"serving rtsp://127.0.0.1:{port}{MOUNT}", flush=True)
    GLib.MainLoop().run()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve a live RTSP test camera on loopback.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--colour", choices=sorted(COLOURS_BGR), default="red")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--bind-timeout", type=float, default=10.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    return _serve(args.port, args.colour, args.fps, args.size, args.bind_timeout)


if __name__ == "__main__":
    sys.exit(main())
