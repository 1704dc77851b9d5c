"""A misbehaving HTTP server on 127.0.0.1 for download and source tests (a thread, bounded waits).

Routes: ``/video.mp4`` (a small binary "video"), ``/drip.mp4`` (headers, then one byte every
``drip_interval_s``), ``/hang.mp4`` (headers never sent), ``/404.mp4``, ``/loop`` (redirects to
itself), ``/to-internal`` (redirects to ``/internal``, which records that it was reached),
``/playlist.mp4`` (an HLS playlist pointing at a local file).
"""

from __future__ import annotations

import http.server
import threading
import time

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4


class HostileHttpServer:
    def __init__(self, drip_interval_s: float = 0.5):
        self.drip_interval_s = drip_interval_s
        self.hits: list[str] = []
        self.dripping = 0  # drips being served now, and the most at once
        self.peak_dripping = 0
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base name)
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.hits.append(self.path)
                path = self.path.split("?", 1)[0]
                if path == "/video.mp4":
                    self._send(200, VIDEO_BYTES)
                elif path == "/playlist.mp4":
                    self._send(
                        200, b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/hostname\n"
                    )
                elif path == "/404.mp4":
                    self._send(404, b"no")
                elif path == "/loop":
                    self._redirect(self.path)
                elif path == "/to-internal":
                    self._redirect(f"http://127.0.0.1:{outer.port}/internal")
                elif path == "/internal":
                    self._send(200, VIDEO_BYTES)
                elif path == "/drip.mp4":
                    with outer._lock:
                        outer.dripping += 1
                        outer.peak_dripping = max(outer.peak_dripping, outer.dripping)
                    try:
                        self._drip()
                    finally:
                        with outer._lock:
                            outer.dripping -= 1
                elif path == "/hang.mp4":
                    outer.stopping.wait(600)
                else:
                    self._send(404, b"?")

            def _drip(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(2000):  # bounded: at most ~1000 s, stopped with the server
                    if outer.stopping.wait(outer.drip_interval_s):
                        return
                    try:
                        self.wfile.write(b"\x00")
                        self.wfile.flush()
                    except OSError:
                        return

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="hostile-http", daemon=True
        )

    def __enter__(self) -> HostileHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        time.sleep(0.05)
