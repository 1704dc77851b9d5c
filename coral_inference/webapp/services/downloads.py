"""Fetching remote videos for pipelines: timeout, retries with backoff, size limit.

A download lands in ``services.pipelines.videos_dir`` under a name no other
download can take (a random prefix plus the cleaned-up URL basename), is
written to a ``.part`` file first and renamed only when complete, so a pipeline
never reads half a file.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from coral_inference.webapp.errors import PayloadTooLargeError, SourceUnavailableError

logger = logging.getLogger("coral_inference.webapp.downloads")

CHUNK = 1 << 16
BACKOFF_S = 0.5


def safe_basename(url: str, default: str = "video.mp4") -> str:
    """The URL's file name reduced to ``[A-Za-z0-9._-]`` (never empty, never a dot file).

    >>> safe_basename("https://cams.example/a b/../clip%201.mp4?x=1")
    'clip_1.mp4'
    """
    name = unquote(Path(urlparse(url).path).name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name[:80] or default


class VideoDownloader:
    def __init__(self, directory: Path, *, timeout_s: float, retries: int, max_bytes: int,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.directory = Path(directory)
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_bytes = max_bytes
        self._transport = transport  # tests hand in a MockTransport

    async def fetch(self, url: str) -> Path:
        """Download ``url`` and return the local file; raises an ``ApiError`` naming the URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{uuid.uuid4().hex[:12]}_{safe_basename(url)}"
        partial = target.with_name(target.name + ".part")
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                await self._download(url, partial)
                partial.rename(target)
                return target
            except (PayloadTooLargeError, _PermanentError) as exc:
                partial.unlink(missing_ok=True)
                if isinstance(exc, _PermanentError):
                    raise SourceUnavailableError(str(exc), code="download_failed") from None
                raise
            except (httpx.TransportError, _RetryableError) as exc:
                partial.unlink(missing_ok=True)
                last_error = exc
                logger.warning("download %s failed (attempt %d/%d): %s", url, attempt + 1, self.retries + 1, exc)
                if attempt < self.retries:
                    await asyncio.sleep(BACKOFF_S * 2**attempt)
        if isinstance(last_error, httpx.TimeoutException):
            raise SourceUnavailableError(
                f"downloading {url} timed out after {self.retries + 1} attempt(s) of {self.timeout_s:g} s "
                "(raise services.pipelines.download_timeout_s)", code="download_timeout",
            )
        raise SourceUnavailableError(
            f"downloading {url} failed after {self.retries + 1} attempt(s): {last_error}", code="download_failed"
        )

    async def _download(self, url: str, partial: Path) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=True, transport=self._transport) as client:
            async with client.stream("GET", url) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise _RetryableError(f"{url}: HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise _PermanentError(f"downloading {url} failed: HTTP {response.status_code}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > self.max_bytes:
                    raise self._too_large(url, declared)
                received = 0
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        received += len(chunk)
                        if received > self.max_bytes:
                            raise self._too_large(url, received)
                        out.write(chunk)

    def _too_large(self, url: str, size: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"{url} is larger than services.pipelines.download_max_bytes={self.max_bytes} "
            f"(at least {size} bytes)", code="download_too_large",
        )


class _RetryableError(Exception):
    pass


class _PermanentError(Exception):
    pass
