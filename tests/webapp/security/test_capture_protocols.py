"""Issue 13.9, reader side: a playlist served by a stream URL cannot make the reader open a local file.

A key holder may point a pipeline at any http(s) URL (a live stream). If what that URL
serves is an HLS playlist whose segments are local paths, the reader (OpenCV's ffmpeg)
would read files of the box. ``OPENCV_FFMPEG_CAPTURE_OPTIONS=protocol_whitelist;…`` was
the planned defence; measured here, the installed OpenCV (4.11.0.86) ignores that
variable altogether (neither ``protocol_whitelist`` nor ``protocol_blacklist`` changes
what opens, and its "using capture options from environment" debug line never appears),
so Coral does not pretend to set it. What does hold is the bundled ffmpeg's own rule:
segments of a remote playlist may only be http(s). This test pins that down against
every trick tried, with a control that the same playlist plays when its segment is http,
so an OpenCV upgrade that loses the rule fails here.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from tests.pipelines.media import write_test_video

TRICKS = [
    "file:{path}",
    "file://{path}",
    "{path}",
    "concat:{path}",
    "subfile,,start,0,end,0,,:{path}",
    "cache:{path}",
    "async:file:{path}",
]


def frames(source: str, limit: int = 5) -> int:
    capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
    try:
        count = 0
        while count < limit and capture.read()[0]:
            count += 1
        return count
    finally:
        capture.release()


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Path, str]]:
    """A folder served over loopback http, and its base URL."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def playlist(segment: str) -> str:
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n"
        f"#EXTINF:4.0,\n{segment}\n#EXT-X-ENDLIST\n"
    )


def test_a_remote_playlist_plays_its_http_segments_but_never_a_local_file(tmp_path, served):
    folder, base = served
    secret = write_test_video(tmp_path / "private" / "secret.mp4", frames=30, fps=10)
    public = write_test_video(folder / "public.mp4", frames=30, fps=10)
    (folder / "good.m3u8").write_text(playlist(f"{base}/{public.name}"))
    assert frames(f"{base}/good.m3u8") == 5  # control: the playlist itself is fine
    for i, trick in enumerate(TRICKS):
        (folder / f"bad{i}.m3u8").write_text(playlist(trick.format(path=secret)))
        assert frames(f"{base}/bad{i}.m3u8") == 0, trick
