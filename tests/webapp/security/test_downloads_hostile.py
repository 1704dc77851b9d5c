"""Downloads from a misbehaving server on 127.0.0.1 (13.8, 13.9): deadline, bound, redirects."""

from __future__ import annotations

import asyncio
import time

import pytest

from coral_inference.pipelines.sources_policy import UNREACHABLE, SourcePolicy
from coral_inference.webapp.errors import SourceUnavailableError
from coral_inference.webapp.services import downloads
from coral_inference.webapp.services.downloads import VideoDownloader

from .hostile_http import VIDEO_BYTES, HostileHttpServer


@pytest.fixture
def hostile():
    with HostileHttpServer(drip_interval_s=0.2) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(downloads, "BACKOFF_S", 0.0)


def make(
    tmp_path, *, timeout_s=1.5, retries=0, max_concurrent=2, redirect_hosts=()
) -> VideoDownloader:
    policy = SourcePolicy(
        roots=[], devices=[], schemes=["http", "https"], redirect_hosts=redirect_hosts
    )
    return VideoDownloader(
        tmp_path / "videos",
        timeout_s=timeout_s,
        retries=retries,
        max_bytes=10**6,
        max_concurrent=max_concurrent,
        policy=policy,
    )


def fetch(downloader: VideoDownloader, url: str, bound_s: float = 20.0):
    # The bound keeps a regression (a per-read timeout) from hanging the suite.
    return asyncio.run(asyncio.wait_for(downloader.fetch(url), bound_s))


def test_a_slow_drip_ends_at_the_deadline_not_after_the_last_byte(tmp_path, hostile):
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError):
        fetch(make(tmp_path, timeout_s=1.5), f"{hostile.base}/drip.mp4")
    assert time.monotonic() - started < 5
    assert list((tmp_path / "videos").iterdir()) == []  # no .part left behind


def test_downloads_beyond_the_bound_wait_their_turn(tmp_path, hostile):
    downloader = make(tmp_path, timeout_s=1.0, max_concurrent=2)
    seen: list[int] = []

    async def four() -> list:
        async def sample() -> None:
            while True:
                seen.append(downloader.active)
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        try:
            return await asyncio.gather(
                *(downloader.fetch(f"{hostile.base}/drip.mp4") for _ in range(4)),
                return_exceptions=True,
            )
        finally:
            sampler.cancel()

    started = time.monotonic()
    results = asyncio.run(asyncio.wait_for(four(), 30))
    assert all(isinstance(r, SourceUnavailableError) for r in results)
    assert max(seen) == 2 and len(hostile.hits) == 4
    assert time.monotonic() - started >= 2.0  # two rounds of the 1 s deadline, not one


def test_closed_404_and_hanging_sources_read_the_same(tmp_path, hostile):
    from tests.conftest import free_port

    closed = f"http://127.0.0.1:{free_port()}/v.mp4"
    messages = set()
    for url in (closed, f"{hostile.base}/404.mp4", f"{hostile.base}/hang.mp4"):
        with pytest.raises(SourceUnavailableError) as caught:
            fetch(make(tmp_path, timeout_s=1.0), url)
        assert caught.value.code == "source_unavailable" and caught.value.status == 422
        messages.add(caught.value.message.replace(url, "URL"))
    assert messages == {f"source 'URL' {UNREACHABLE}"}


def test_redirects_to_hosts_not_listed_are_not_followed(tmp_path, hostile):
    with pytest.raises(SourceUnavailableError):
        fetch(make(tmp_path), f"{hostile.base}/to-internal")
    assert "/internal" not in hostile.hits
    allowed = make(tmp_path, redirect_hosts=["127.0.0.1"])
    assert fetch(allowed, f"{hostile.base}/to-internal").read_bytes() == VIDEO_BYTES


def test_a_redirect_loop_and_a_broken_url_are_unreachable_sources(tmp_path, hostile):
    for url in (f"{hostile.base}/loop", "http://[::1"):
        with pytest.raises(SourceUnavailableError):
            fetch(make(tmp_path, redirect_hosts=["127.0.0.1"]), url)


def test_a_playlist_is_not_downloaded_as_a_video(tmp_path, hostile):
    with pytest.raises(SourceUnavailableError):
        fetch(make(tmp_path), f"{hostile.base}/playlist.mp4")
    assert list((tmp_path / "videos").iterdir()) == []


def test_a_download_lives_as_long_as_its_pipeline(tmp_path, hostile):
    downloader = make(tmp_path)
    kept = fetch(downloader, f"{hostile.base}/video.mp4")
    gone = fetch(downloader, f"{hostile.base}/video.mp4")
    mine = tmp_path / "videos" / "operator-clip.mp4"  # put there by hand: never a download's name
    mine.write_bytes(VIDEO_BYTES)
    assert downloader.release(gone) and not gone.exists()
    assert not downloader.release(mine) and not downloader.release(tmp_path / "elsewhere.mp4")
    orphan = fetch(downloader, f"{hostile.base}/video.mp4")
    assert downloader.prune(keep=[kept]) == [orphan]
    assert kept.exists() and mine.exists()
