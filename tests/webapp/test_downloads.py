"""VideoDownloader: retries, size limit, timeouts and names that never collide (httpx MockTransport)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from coral_inference.webapp.errors import PayloadTooLargeError, SourceUnavailableError
from coral_inference.webapp.services import downloads
from coral_inference.webapp.services.downloads import VideoDownloader, safe_basename


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(downloads, "BACKOFF_S", 0.0)


def downloader(tmp_path, handler, **kw) -> VideoDownloader:
    kw.setdefault("timeout_s", 5)
    kw.setdefault("retries", 2)
    kw.setdefault("max_bytes", 1000)
    return VideoDownloader(tmp_path / "videos", transport=httpx.MockTransport(handler), **kw)


def test_a_download_lands_complete_under_a_fresh_name(tmp_path):
    d = downloader(tmp_path, lambda request: httpx.Response(200, content=b"v" * 500))
    first = asyncio.run(d.fetch("https://cams.example/clips/door.mp4?sig=1"))
    second = asyncio.run(d.fetch("https://cams.example/clips/door.mp4?sig=1"))
    assert first != second and first.read_bytes() == b"v" * 500
    assert first.name.endswith("_door.mp4") and first.parent == tmp_path / "videos"
    assert not list((tmp_path / "videos").glob("*.part"))


def test_server_errors_are_retried_then_succeed(tmp_path):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503) if len(calls) < 3 else httpx.Response(200, content=b"ok")

    assert asyncio.run(downloader(tmp_path, handler).fetch("http://h/v.mp4")).read_bytes() == b"ok"
    assert len(calls) == 3


def test_client_errors_are_not_retried(tmp_path):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(404)

    with pytest.raises(
        SourceUnavailableError, match="cannot be opened"
    ):  # no 404/closed/hanging distinction
        asyncio.run(downloader(tmp_path, handler).fetch("http://h/v.mp4"))
    assert len(calls) == 1


def test_retries_run_out_with_the_url_in_the_error(tmp_path, caplog):
    def handler(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(SourceUnavailableError, match=r"source 'http://h/v.mp4' cannot be opened"):
        asyncio.run(downloader(tmp_path, handler).fetch("http://h/v.mp4"))
    assert "attempt 3/3" in caplog.text  # the log says how it failed


def test_timeouts_name_the_setting_to_raise_in_the_log(tmp_path, caplog):
    async def handler(request):
        await asyncio.sleep(5)
        return httpx.Response(200, content=b"late")

    with pytest.raises(SourceUnavailableError, match="cannot be opened"):
        asyncio.run(downloader(tmp_path, handler, retries=0, timeout_s=0.2).fetch("http://h/v.mp4"))
    assert "download_timeout_s" in caplog.text


def test_oversized_videos_are_refused_declared_or_streamed(tmp_path):
    declared = downloader(
        tmp_path,
        lambda r: httpx.Response(200, headers={"content-length": "5000"}, content=b"x" * 5000),
    )
    with pytest.raises(PayloadTooLargeError, match="download_max_bytes"):
        asyncio.run(declared.fetch("http://h/big.mp4"))

    def stream(request):
        return httpx.Response(200, stream=httpx.ByteStream(b"x" * 5000))

    with pytest.raises(PayloadTooLargeError):
        asyncio.run(downloader(tmp_path, stream).fetch("http://h/big.mp4"))
    assert list((tmp_path / "videos").iterdir()) == []


@pytest.mark.parametrize(
    "url, name",
    [
        ("https://a/b/clip%201.mp4", "clip_1.mp4"),
        ("https://a/", "video.mp4"),
        ("https://a/..", "video.mp4"),
        ("https://a/x/.hidden", "hidden"),
    ],
)
def test_safe_basename(url, name):
    assert safe_basename(url) == name
