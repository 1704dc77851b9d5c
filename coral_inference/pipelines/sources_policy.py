"""Which video sources a pipeline may open, so that an API key does not make the box a pivot.

A key holder may start pipelines; that must not let them read any file of the box,
open any device, scan the network behind it or make it listen on a port:

* local files only inside ``services.pipelines.sources_roots`` (and ``videos_dir``), after
  resolving symlinks; a missing file and a file outside the roots get the same answer, so the
  API does not say which files exist; text files (HLS/concat playlists, SDP) are not videos;
* cameras only from ``services.pipelines.devices`` (indexes and ``/dev/video*`` paths);
* live URLs only with a scheme from ``services.pipelines.stream_schemes`` and never with
  listening options (``tcp://…?listen=1``, ``srt://…?mode=listener``, a wildcard host);
* ffmpeg reads a source only through the protocols its kind needs (``capture_options``),
  so a playlist cannot pull ``file:`` URLs;
* http(s) redirects only to ``services.pipelines.allowed_redirect_hosts``;
* every source that cannot be opened gets one message (``UNREACHABLE``): closed port, 404
  and silence read the same; the log has the cause.

``SourcePolicy.check`` is what the pipeline start path calls, before anything is opened.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from coral_inference.redaction import redact_url

SourceKind = Literal["file", "camera", "stream", "download"]
UNREACHABLE = "cannot be opened (unreachable, refused, not found, or not a video)"
MAX_CAMERA_INDEX = 63
SNIFF_BYTES = 512
# What ffmpeg may use per kind of source: a local file reads only itself (no URL from a playlist).
FILE_PROTOCOLS = "file"
STREAM_PROTOCOLS = (
    "rtsp,rtsps,rtp,srtp,udp,tcp,tls,http,https,httpproxy,crypto,rtmp,rtmps,rtmpt,rtmpts,srt,data"
)
_LISTEN_OPTIONS = {"listen", "listen_timeout", "rtsp_flags", "listener"}
_TEXT_SIGNATURES = (b"#EXTM3U", b"#EXT-X", b"ffconcat", b"[playlist]", b"<?xml", b"v=0", b"file ")


class SourceRefusedError(ValueError):
    """A source the policy does not allow; ``str()`` names the setting that would admit it."""

    def __init__(self, message: str, *, code: str = "source_not_allowed"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CheckedSource:
    """A source the policy admitted: what the reader opens, and how."""

    value: str | int  # a resolved absolute path for files, the URL, or the camera index/path
    kind: SourceKind

    @property
    def capture_options(self) -> str:
        """``OPENCV_FFMPEG_CAPTURE_OPTIONS`` for this source (set in the reader's process)."""
        return capture_options(self.kind)


def capture_options(kind: SourceKind) -> str:
    """ffmpeg options in OpenCV's ``key;value|key;value`` form: the protocols this kind may use.

    >>> capture_options("file")
    'protocol_whitelist;file'
    """
    protocols = FILE_PROTOCOLS if kind in ("file", "download") else STREAM_PROTOCOLS
    return f"protocol_whitelist;{protocols}"


def unreachable(source: str | int) -> str:
    """The one message for a source that cannot be opened, whatever the reason."""
    return f"source {redact_url(source)!r} {UNREACHABLE}"


class SourcePolicy:
    def __init__(
        self,
        *,
        roots: Iterable[Path],
        devices: Iterable[int | str],
        schemes: Iterable[str],
        redirect_hosts: Iterable[str] = (),
    ):
        self.roots = [Path(root).expanduser().resolve() for root in roots]
        self.devices = {str(device) for device in devices}
        self.schemes = {scheme.lower().rstrip(":/") for scheme in schemes}
        self.redirect_hosts = {host.lower().rstrip(".") for host in redirect_hosts}

    @classmethod
    def from_config(cls, pipelines: Any) -> SourcePolicy:
        """From ``services.pipelines``: sources_roots + videos_dir, devices, schemes, redirects."""
        return cls(
            roots=[*pipelines.sources_roots, pipelines.videos_dir],
            devices=pipelines.devices,
            schemes=pipelines.stream_schemes,
            redirect_hosts=pipelines.allowed_redirect_hosts,
        )

    # ------------------------------------------------------------------ the one entry point

    def check(self, source: str | int, *, download: bool = True) -> CheckedSource:
        """Admit ``source`` or raise ``SourceRefusedError``; reads at most a file's first bytes.

        ``download``: an http(s) URL is fetched first (kind ``download``) rather than read live.
        """
        if isinstance(source, bool):
            raise SourceRefusedError("a video source cannot be a boolean", code="invalid_source")
        if isinstance(source, int):
            return self.check_camera(source)
        text = str(source).strip()
        if not text:
            raise SourceRefusedError(
                "empty video source: give a file, a URL or a camera index", code="invalid_source"
            )
        if text.isdigit():
            return self.check_camera(int(text))
        if "://" in text:
            return self.check_url(text, download=download)
        if text in self.devices:
            return CheckedSource(text, "camera")
        return CheckedSource(str(self.check_file(text)), "file")

    # ------------------------------------------------------------------ kinds

    def check_camera(self, index: int | str) -> CheckedSource:
        if isinstance(index, int) and not 0 <= index <= MAX_CAMERA_INDEX:
            raise SourceRefusedError(
                f"camera index {index} is out of range 0..{MAX_CAMERA_INDEX}", code="invalid_camera"
            )
        if str(index) not in self.devices:
            listed = sorted(self.devices) or "none"
            raise SourceRefusedError(
                f"camera {index} is not in services.pipelines.devices (allowed: {listed}); "
                "add it there to use it",
                code="camera_not_allowed",
            )
        return CheckedSource(index, "camera")

    def check_file(self, text: str) -> Path:
        """The resolved file inside a root; outside, missing, a folder, a playlist read alike."""
        refused = SourceRefusedError(
            f"source {text!r} is not a video file under services.pipelines.sources_roots "
            "(or videos_dir); put the file there or add its folder to sources_roots",
            code="source_not_allowed",
        )
        if "\x00" in text:
            raise refused
        given = Path(text).expanduser()
        candidates = [given] if given.is_absolute() else [root / given for root in self.roots]
        for candidate in candidates:
            try:
                resolved = candidate.resolve(strict=True)  # symlinks followed; loops raise
            except (OSError, RuntimeError):
                continue
            if self._inside_roots(resolved) and resolved.is_file() and _looks_like_media(resolved):
                return resolved
        raise refused

    def check_url(self, url: str, *, download: bool = True) -> CheckedSource:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            query = parse_qsl(parts.query, keep_blank_values=True)
            _ = parts.port  # a bad port raises here, not in the reader
        except ValueError:
            raise SourceRefusedError(
                f"source {redact_url(url)!r} is not a valid URL", code="invalid_source"
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            raise SourceRefusedError(
                f"source {redact_url(url)!r}: the scheme {scheme!r} is not in "
                f"services.pipelines.stream_schemes "
                f"(allowed: {sorted(self.schemes)})",
                code="scheme_not_allowed",
            )
        if _listens(host, query):
            raise SourceRefusedError(
                f"source {redact_url(url)!r} would make this box listen for connections; "
                "give the address of a camera or server to connect to",
                code="listening_source",
            )
        if scheme in ("http", "https") and download:
            return CheckedSource(url, "download")
        return CheckedSource(url, "stream")

    def redirect_allowed(self, location: str) -> bool:
        """May an http(s) source follow a redirect to ``location``?"""
        try:
            parts = urlsplit(location)
        except ValueError:
            return False
        host = (parts.hostname or "").lower().rstrip(".")
        return (
            parts.scheme.lower() in ("http", "https") and bool(host) and host in self.redirect_hosts
        )

    def _inside_roots(self, path: Path) -> bool:
        return any(path == root or root in path.parents for root in self.roots)


def _listens(host: str, query: list[tuple[str, str]]) -> bool:
    if not host:
        return True  # udp://@:1234, tcp://:5000 — a local port, not a peer
    try:
        if ipaddress.ip_address(host).is_unspecified:
            return True
    except ValueError:
        pass
    for key, value in query:
        key = key.lower()
        if key in _LISTEN_OPTIONS and value not in ("0", ""):
            return True
        if key == "mode" and value.lower() in ("listener", "server", "rendezvous"):
            return True
    return False


def _looks_like_media(path: Path) -> bool:
    # Playlists and other text formats make ffmpeg open further URLs; a video or image is binary.
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if any(stripped.startswith(signature) for signature in _TEXT_SIGNATURES):
        return False
    return bool(head) and not _is_text(head)


def _is_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in decoded)
