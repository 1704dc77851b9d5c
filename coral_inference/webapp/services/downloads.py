"""Fetching remote videos for pipelines: a deadline, retries with backoff, a size limit, a bound.

A download lands in ``services.pipelines.videos_dir`` under a name no other
download can take (a random prefix plus the cleaned-up URL basename), is
written to a ``.part`` file first and renamed only when complete, so a pipeline
never reads half a file.

* Each attempt has one deadline for the whole transfer (``download_timeout_s``),
  not a per-read timeout a server can reset by dripping a byte at a time.
* At most ``max_concurrent_downloads`` run at once; the rest wait their turn
  (and the wait counts against nobody's deadline).
* Redirects are followed only to ``services.pipelines.allowed_redirect_hosts``.
* Every failure reads the same to the client (``sources_policy.unreachable``):
  a closed port, a 404 and a server that never answers cannot be told apart,
  so the API is no port scanner; the log has the cause.
* A playlist (HLS, ffconcat, SDP) is not a video: ffmpeg would follow the URLs
  inside it, local files included.
* The file belongs to its pipeline: ``release(path)`` deletes it when the pipeline
  is deleted, and ``prune(keep)`` removes downloads no pipeline refers to.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import httpx

from coral_inference.pipelines.sources_policy import SourcePolicy, unreachable
from coral_inference.redaction import redact_url
from coral_inference.webapp.errors import PayloadTooLargeError, SourceUnavailableError

logger = logging.getLogger("coral_inference.webapp.downloads")

CHUNK = 1 << 16
BACKOFF_S = 0.5
MAX_REDIRECTS = 5
PLAYLIST_SIGNATURES = (b"#EXTM3U", b"#EXT-X", b"ffconcat", b"[playlist]", b"v=0")
_DOWNLOAD_NAME = re.compile(r"^[0-9a-f]{12}_")  # the random prefix every download gets


def safe_basename(url: str, default: str = "video.mp4") -> str:
    """The URL's file name reduced to ``[A-Za-z0-9._-]`` (never empty, never a dot file).

    >>> safe_basename("https://cams.example/a b/../clip%201.mp4?x=1")
    'clip_1.mp4'
    """
    try:
        path = urlparse(url).path
    except ValueError:
        return default
    name = unquote(Path(path).name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name[:80] or default


class VideoDownloader:
    def __init__(
        self,
        directory: Path,
        *,
        timeout_s: float,
        retries: int,
        max_bytes: int,
        max_concurrent: int = 2,
        policy: SourcePolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.directory = Path(directory)
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_bytes = max_bytes
        self.max_concurrent = max_concurrent
        self.policy = policy or SourcePolicy(roots=[], devices=[], schemes=["http", "https"])
        self._transport = transport  # tests hand in a MockTransport
        self._slots: asyncio.Semaphore | None = None  # made on the serving loop, at first use
        self.active = 0

    @classmethod
    def from_config(cls, pipelines: Any) -> VideoDownloader:
        """From ``services.pipelines``: folder, deadline, retries, limits, source policy."""
        return cls(
            Path(pipelines.videos_dir),
            timeout_s=pipelines.download_timeout_s,
            retries=pipelines.download_retries,
            max_bytes=pipelines.download_max_bytes,
            max_concurrent=pipelines.max_concurrent_downloads,
            policy=SourcePolicy.from_config(pipelines),
        )

    async def fetch(self, url: str) -> Path:
        """Download ``url`` and return the local file; ``ApiError`` naming the (redacted) URL."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        async with self._slots:
            self.active += 1
            try:
                return await self._fetch(url)
            finally:
                self.active -= 1

    async def _fetch(self, url: str) -> Path:
        shown = redact_url(url)
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{uuid.uuid4().hex[:12]}_{safe_basename(url)}"
        partial = target.with_name(target.name + ".part")
        for attempt in range(self.retries + 1):
            try:
                await asyncio.wait_for(self._download(url, partial), self.timeout_s)
                partial.rename(target)
                return target
            except PayloadTooLargeError:
                partial.unlink(missing_ok=True)
                raise
            except _PermanentError as exc:
                partial.unlink(missing_ok=True)
                logger.warning("download %s refused: %s", shown, exc)
                raise SourceUnavailableError(unreachable(url), code="source_unavailable") from None
            except (httpx.TransportError, _RetryableError, asyncio.TimeoutError) as exc:
                partial.unlink(missing_ok=True)
                cause = (
                    f"no complete answer within {self.timeout_s:g} s "
                    "(services.pipelines.download_timeout_s)"
                    if isinstance(exc, asyncio.TimeoutError)
                    else f"{type(exc).__name__}: {exc}"
                )
                logger.warning(
                    "download %s failed (attempt %d/%d): %s",
                    shown,
                    attempt + 1,
                    self.retries + 1,
                    cause,
                )
                if attempt < self.retries:
                    await asyncio.sleep(BACKOFF_S * 2**attempt)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        raise SourceUnavailableError(unreachable(url), code="source_unavailable")

    async def _download(self, url: str, partial: Path) -> None:
        async with httpx.AsyncClient(
            timeout=self.timeout_s, follow_redirects=False, transport=self._transport
        ) as client:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    request = client.build_request("GET", current)
                except (httpx.InvalidURL, ValueError) as exc:
                    raise _PermanentError(f"invalid URL: {exc}") from None
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect:
                        location = urljoin(current, response.headers.get("location", ""))
                        if not self.policy.redirect_allowed(location):
                            raise _PermanentError(
                                f"redirect to {redact_url(location)} refused "
                                "(not in services.pipelines.allowed_redirect_hosts)"
                            )
                        current = location
                        continue
                    await self._save(response, url, partial)
                    return
                finally:
                    await response.aclose()
            raise _PermanentError(f"more than {MAX_REDIRECTS} redirects")

    async def _save(self, response: httpx.Response, url: str, partial: Path) -> None:
        if response.status_code >= 500 or response.status_code == 429:
            raise _RetryableError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise _PermanentError(f"HTTP {response.status_code}")
        declared = int(response.headers.get("content-length") or 0)
        if declared > self.max_bytes:
            raise self._too_large(url, declared)
        received = 0
        head = b""
        with partial.open("wb") as out:
            async for chunk in response.aiter_bytes(CHUNK):
                received += len(chunk)
                if received > self.max_bytes:
                    raise self._too_large(url, received)
                if len(head) < 64:
                    head += chunk[:64]
                    if _is_playlist(head):
                        raise _PermanentError(
                            "a playlist, not a video (ffmpeg would open the URLs inside it)"
                        )
                out.write(chunk)

    def _too_large(self, url: str, size: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"{redact_url(url)} is larger than "
            f"services.pipelines.download_max_bytes={self.max_bytes} "
            f"(at least {size} bytes)",
            code="download_too_large",
        )

    # ------------------------------------------------------------------ the files' life

    def owns(self, path: str | Path) -> bool:
        """True for a file this downloader made: directly in videos_dir, with a download's name."""
        try:
            inside = Path(path).resolve().parent == self.directory.resolve()
        except (OSError, RuntimeError):
            return False
        return inside and bool(_DOWNLOAD_NAME.match(Path(path).name))

    def release(self, path: str | Path) -> bool:
        """Delete a downloaded video when its pipeline is deleted; other paths are left alone."""
        if not self.owns(path):
            return False
        try:
            Path(path).unlink()
        except FileNotFoundError:
            return False
        logger.info("deleted the downloaded video %s (its pipeline is gone)", Path(path).name)
        return True

    def prune(self, keep: Iterable[str | Path]) -> list[Path]:
        """Delete downloads (and stale ``.part`` files) that no pipeline in ``keep`` refers to.

        Only files with a download's name go; anything else an operator put in videos_dir stays.
        """
        if not self.directory.is_dir():
            return []
        kept = set()
        for path in keep:
            try:
                kept.add(Path(path).resolve())
            except (OSError, RuntimeError):
                continue
        removed = []
        for path in self.directory.iterdir():
            if path.is_file() and self.owns(path) and path.resolve() not in kept:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def _is_playlist(head: bytes) -> bool:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return any(stripped.startswith(signature) for signature in PLAYLIST_SIGNATURES)


class _RetryableError(Exception):
    pass


class _PermanentError(Exception):
    pass
