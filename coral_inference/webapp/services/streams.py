"""StreamService: WebRTC answers, JPEG snapshots and the recordings library; no HTTP in here.

Live video goes through the runtime's ``StreamHub``: every pipeline publishes
its preview image under its id, and ``coral/webrtc_preview@v1`` blocks publish
under the channel they name. Recordings are files under
``storage.recordings``; a client names them by a path relative to that root and
never reaches outside it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from coral_inference.webapp.errors import (
    ApiError,
    InvalidInputError,
    NotFoundError,
    TimeoutApiError,
    UnavailableError,
)
from coral_inference.webapp.paths import existing_file_under

if TYPE_CHECKING:
    from coral_inference.media.webrtc import StreamHub
    from coral_inference.runtime.context import RuntimeContext

logger = logging.getLogger("coral_inference.webapp.streams")

RECORDING_SUFFIXES = (".mp4",)
MAX_RECORDINGS_LISTED = 2000
JPEG_QUALITY = 85
MAX_CAMERA_INDEX = 63


class StreamService:
    def __init__(self, context: RuntimeContext, *, hub: StreamHub | None = None):
        self.context = context
        self.recordings_root = Path(context.config.storage.recordings)
        self.snapshot_timeout_s = context.config.services.streams.snapshot_timeout_s
        self._hub = hub
        self._durations: dict[tuple[str, int, float], float | None] = {}
        self._camera_lock = threading.Lock()

    @property
    def hub(self) -> Any:
        if self._hub is None:
            self._hub = self.context.streams
        return self._hub

    def publish(self, channel: str, frame_bgr: np.ndarray) -> None:
        self.hub.publish(channel, frame_bgr)

    def attach_preview(self, channel: str, source: Any) -> None:
        """A pipeline worker's shared-memory preview feeds ``channel`` (no JPEG, no pipe)."""
        self.hub.attach_source(channel, source)

    def detach_preview(self, channel: str) -> None:
        self.hub.detach_source(channel)

    # ------------------------------------------------------------------ WebRTC

    async def answer(self, channel: str, sdp: str, type: str = "offer") -> dict[str, str]:
        """The SDP answer for a viewer of ``channel``; hub errors become API errors."""
        # heavy: media.webrtc loads aiortc, av, cryptography (~1 s)
        from coral_inference.media import webrtc

        try:
            return await self.hub.answer(channel, sdp, type)
        except webrtc.InvalidOfferError as exc:
            raise InvalidInputError(str(exc), code="invalid_offer") from None
        except webrtc.PeerLimitError as exc:
            raise UnavailableError(str(exc), code="too_many_viewers") from None
        except webrtc.OfferTimeoutError as exc:
            raise TimeoutApiError(str(exc), code="offer_timeout") from None
        except webrtc.StreamHubClosedError as exc:
            raise UnavailableError(str(exc), code="stream_hub_closed") from None
        except webrtc.StreamError as exc:
            raise ApiError(str(exc), code="stream_error") from None

    def channels(self) -> list[dict[str, Any]]:
        return self.hub.channels()

    # ------------------------------------------------------------------ snapshots

    def channel_snapshot(self, channel: str) -> bytes:
        frame = self.hub.latest_frame(channel)
        if frame is None:
            raise NotFoundError(
                f"channel {channel!r} has no frame (nothing published to it yet)",
                code="channel_not_found",
            )
        return encode_jpeg(frame)

    async def camera_snapshot(self, index: int) -> bytes:
        """One frame from camera ``index``, within ``services.streams.snapshot_timeout_s``."""
        if not 0 <= index <= MAX_CAMERA_INDEX:
            raise InvalidInputError(
                f"camera index {index} is out of range 0..{MAX_CAMERA_INDEX}", code="invalid_camera"
            )
        try:
            frame = await asyncio.wait_for(
                asyncio.to_thread(self._grab_camera, index), self.snapshot_timeout_s
            )
        except asyncio.TimeoutError:
            raise TimeoutApiError(
                f"camera {index} gave no frame within {self.snapshot_timeout_s:g} s "
                "(services.streams.snapshot_timeout_s)",
                code="camera_timeout",
            ) from None
        if frame is None:
            raise NotFoundError(
                f"camera {index} cannot be opened or gave no frame", code="camera_unavailable"
            )
        return encode_jpeg(frame)

    def _grab_camera(self, index: int) -> np.ndarray | None:
        with self._camera_lock:  # one device open at a time
            capture = cv2.VideoCapture(index)
            try:
                if not capture.isOpened():
                    return None
                ok, frame = capture.read()
                return frame if ok else None
            finally:
                capture.release()

    # ------------------------------------------------------------------ recordings

    def list_recordings(self) -> list[dict[str, Any]]:
        """Every recording under the recordings root, newest first, with size, time and duration."""
        root = self.recordings_root
        if not root.is_dir():
            return []
        base = root.resolve()
        rows = []
        for path in root.rglob("*"):
            if path.suffix.lower() not in RECORDING_SUFFIXES or path.name.startswith("."):
                continue
            try:
                resolved = path.resolve()
                relative = resolved.relative_to(base)
                stat = resolved.stat()
            except (ValueError, OSError, RuntimeError):
                # symlink out of the root, vanished meanwhile, or a symlink loop
                # (Path.resolve raises RuntimeError for one before Python 3.13)
                continue
            if not resolved.is_file():
                continue
            rows.append(
                {
                    "path": relative.as_posix(),
                    "source": relative.parts[0] if len(relative.parts) > 1 else None,
                    "size_bytes": stat.st_size,
                    "modified_at": datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(),
                    "duration_s": self._duration(resolved, stat.st_size, stat.st_mtime),
                    "_mtime": stat.st_mtime,
                }
            )
        rows.sort(key=lambda r: r["_mtime"], reverse=True)
        for row in rows:
            del row["_mtime"]
        return rows[:MAX_RECORDINGS_LISTED]

    def recording_path(self, relative: str) -> Path:
        """The file of a recording, refusing every path that leaves the recordings root."""
        path = existing_file_under(self.recordings_root, relative, what="recording")
        if path.suffix.lower() not in RECORDING_SUFFIXES:
            raise NotFoundError(f"{relative!r} is not a recording", code="recording_not_found")
        return path

    def _duration(self, path: Path, size: int, mtime: float) -> float | None:
        key = (str(path), size, mtime)
        if key not in self._durations:
            if len(self._durations) > 4 * MAX_RECORDINGS_LISTED:
                self._durations.clear()
            self._durations[key] = probe_duration(path)
        return self._durations[key]


def probe_duration(path: Path) -> float | None:
    """Seconds of video in a file (fragmented MP4 still being written included), None if unreadable."""
    # PyAV (FFmpeg's libraries) only to probe a recording's length
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return round(container.duration / 1_000_000, 3)
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return round(float(stream.duration * stream.time_base), 3)
            # Fragmented files may carry no global duration: the last packet's time says it.
            last = None
            for packet in container.demux(stream):
                if packet.pts is not None:
                    last = packet.pts
            if last is None or stream.time_base is None:
                return None  # no time base: no duration (as before, via the except below)
            return round(float(last * stream.time_base), 3)
    except Exception:  # a file being written or a corrupt file has no duration yet
        return None


def encode_jpeg(frame: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ApiError("the frame could not be encoded as JPEG", code="encode_failed", status=500)
    return buffer.tobytes()
