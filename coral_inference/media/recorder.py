"""Video recording per source: continuous segments and event clips in fragmented MP4.

A ``SourceRecorder`` owns one source (a ``video_identifier``). The caller's
thread only *plans*: it decides, from the frame's media time and the trigger,
when a segment starts and when an event clip opens or closes, names those files
by their start time, and puts the frame on a bounded queue (a full queue drops
the frame and counts it, it never blocks). The recorder's own thread encodes
each frame once (``PacketEncoder``) and writes the packets to the open segment
and clip (``Mp4File``). A clip starts with the pre-roll kept as encoded packets
in a ring (from the keyframe at or before ``pre_roll_s``) and ends ``post_roll_s``
after the trigger was last true. A source that sends nothing for
``idle_close_s`` gets its files finished.

``RecordingService`` (one per runtime context) hands out recorders inside the
configured recordings root and runs retention for their folders.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from coral_inference.config.schema import RecordingConfig
from coral_inference.media.encoder import EncodedPacket, EncoderSettings, Mp4File, PacketEncoder
from coral_inference.media.retention import RetentionPolicy, RetentionWorker

logger = logging.getLogger("coral_inference.media.recorder")

RecordingMode = Literal["continuous", "events", "continuous_and_events"]
RECORDING_MODES = ("continuous", "events", "continuous_and_events")
_STOP = object()


class OutsideRecordingsRootError(ValueError):
    """A recorder was asked to write outside the configured recordings root."""


@dataclass(frozen=True)
class RecorderOptions:
    mode: RecordingMode = "continuous"
    segment_seconds: float = 60.0
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    max_clip_s: float = 300.0
    queue_frames: int = 64
    idle_close_s: float = 5.0
    encoder: EncoderSettings = EncoderSettings()

    def __post_init__(self) -> None:
        if self.mode not in RECORDING_MODES:
            raise ValueError(f"recording mode {self.mode!r} is not one of {RECORDING_MODES}")
        for name in ("segment_seconds", "max_clip_s", "idle_close_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"recorder option {name} must be > 0, got {getattr(self, name)}")
        for name in ("pre_roll_s", "post_roll_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"recorder option {name} must be >= 0, got {getattr(self, name)}")

    @property
    def continuous(self) -> bool:
        return self.mode in ("continuous", "continuous_and_events")

    @property
    def events(self) -> bool:
        return self.mode in ("events", "continuous_and_events")

    @classmethod
    def from_config(cls, cfg: RecordingConfig, **overrides: Any) -> RecorderOptions:
        """Defaults from a ``RecordingConfig``; ``overrides`` of None are ignored."""
        encoder_fields = {"codec", "preset", "crf", "keyframe_interval_s", "threads", "width", "height", "fps"}
        given = {k: v for k, v in overrides.items() if v is not None}
        encoder = EncoderSettings(
            codec=cfg.codec, preset=cfg.preset, crf=cfg.crf,
            keyframe_interval_s=cfg.keyframe_interval_s, threads=cfg.threads,
        )
        encoder = replace(encoder, **{k: v for k, v in given.items() if k in encoder_fields})
        base = cls(segment_seconds=cfg.segment_seconds, queue_frames=cfg.queue_frames, idle_close_s=cfg.idle_close_s)
        return replace(base, encoder=encoder, **{k: v for k, v in given.items() if k not in encoder_fields})


@dataclass
class RecorderStats:
    frames_submitted: int = 0
    frames_dropped: int = 0
    frames_written: int = 0
    files_finished: int = 0
    codec: str | None = None
    last_error: str | None = None


@dataclass
class SubmitResult:
    accepted: bool
    file: Path | None
    error: str | None = None


def resolve_inside(root: Path, directory: str | Path) -> Path:
    """``directory`` (relative to ``root`` or absolute) if it lies inside ``root``."""
    root = Path(root).resolve()
    target = (root / Path(directory)).resolve()
    if target != root and root not in target.parents:
        raise OutsideRecordingsRootError(
            f"recording directory {str(directory)!r} resolves to {target}, outside the recordings root "
            f"{root} (config storage.recordings); use a path relative to that root"
        )
    return target


def source_folder_name(source: Any) -> str:
    """A file-system-safe, readable folder name for a video source (URL, path, index)."""
    text = str(source)
    visible = text
    if "://" in text:  # folder names show up in listings: never the URL's credentials
        parts = urlsplit(text)
        visible = f"{parts.scheme}_{parts.hostname or ''}{'_' + str(parts.port) if parts.port else ''}{parts.path}"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", visible).strip("._") or "source"
    if slug != text or len(slug) > 64:
        # Different sources could collapse to one slug: a short digest keeps them apart.
        slug = f"{slug[:48]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return slug


def file_stamp(wall_time: float) -> str:
    moment = datetime.fromtimestamp(wall_time, tz=timezone.utc)
    return moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"


class SourceRecorder:
    """Segments and event clips of one source; ``submit`` never blocks."""

    def __init__(self, folder: Path, options: RecorderOptions, *, name: str = "source"):
        self.folder = Path(folder)
        self.options = options
        self.name = name
        self.stats = RecorderStats()
        self._queue: queue.Queue = queue.Queue(maxsize=options.queue_frames)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # planner state (caller side)
        self._segment: Path | None = None
        self._segment_start = 0.0
        self._clip: Path | None = None
        self._clip_start = 0.0
        self._clip_until = 0.0
        self._last_media: float | None = None
        self._last_submit: float | None = None
        self._pending: list[tuple] = []
        self._names: set[str] = set()
        # writer state (recorder thread), _open_paths read by retention under _lock
        self._open_paths: set[Path] = set()
        self._encoder: PacketEncoder | None = None
        self._t0 = 0.0
        self._segment_file: Mp4File | None = None
        self._clip_file: Mp4File | None = None
        self._ring: deque[EncodedPacket] = deque()
        self._fifo: deque[tuple[int, list[tuple]]] = deque()
        self._segment_expected = False  # a segment is open or its first frame is in the encoder
        self.finished_files: deque[Path] = deque(maxlen=256)

    # ------------------------------------------------------------------ caller side

    def submit(
        self,
        frame_bgr: np.ndarray,
        *,
        media_time: float | None = None,
        wall_time: float | None = None,
        trigger: bool | None = None,
        fps: float | None = None,
    ) -> SubmitResult:
        """Queue a frame shown at ``media_time`` seconds (default: now); never blocks."""
        now = time.monotonic()
        t = now if media_time is None else float(media_time)
        wall = time.time() if wall_time is None else float(wall_time)
        opts = self.options
        with self._lock:
            if self._closed:
                return SubmitResult(False, None, "recorder is closed")
            cmds = self._pending
            restarted = self._last_media is not None and (
                t < self._last_media or now - (self._last_submit or now) >= opts.idle_close_s
            )
            if restarted:  # the source restarted or paused: new files
                cmds.append(("restart",))
                self._segment = self._clip = None
            if opts.continuous and (self._segment is None or t - self._segment_start >= opts.segment_seconds):
                self._segment, self._segment_start = self._new_path("segment", wall), t
                cmds.append(("segment", self._segment))
            if opts.events:
                if self._clip is not None and (t > self._clip_until or t - self._clip_start >= opts.max_clip_s):
                    rotated = t - self._clip_start >= opts.max_clip_s
                    cmds.append(("clip_close",))
                    self._clip = None
                else:
                    rotated = False
                if trigger and self._clip is None:
                    self._clip, self._clip_start = self._new_path("event", wall), t
                    cmds.append(("clip_open", self._clip, t if rotated else t - opts.pre_roll_s))
                if trigger:
                    self._clip_until = t + opts.post_roll_s
            self._last_media, self._last_submit = t, now
            self.stats.frames_submitted += 1
            try:
                self._queue.put_nowait((frame_bgr, t, fps, cmds))
                self._pending = []
                accepted = True
            except queue.Full:
                self._pending = cmds  # file decisions must survive a dropped frame
                self.stats.frames_dropped += 1
                accepted = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"coral-recorder-{self.name}", daemon=True)
                self._thread.start()
            return SubmitResult(accepted, self._clip or self._segment, self.stats.last_error)

    @property
    def current_file(self) -> Path | None:
        with self._lock:
            return self._clip or self._segment

    def open_files(self) -> set[Path]:
        """Files being written (retention must not delete them)."""
        with self._lock:
            return set(self._open_paths) | {p for p in (self._segment, self._clip) if p is not None}

    def _new_path(self, kind: str, wall: float) -> Path:
        stem = f"{kind}_{file_stamp(wall)}"
        name, n = f"{stem}.mp4", 1
        while name in self._names or (self.folder / name).exists():
            name, n = f"{stem}-{n}.mp4", n + 1
        self._names.add(name)
        if len(self._names) > 4096:
            self._names = {name}
        return self.folder / name

    def close(self, timeout: float = 30.0) -> None:
        """Finish open files and stop the thread (frames still queued are written first)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            logger.warning("recorder %s: queue still full after %.0fs; closing anyway", self.name, timeout)
        thread.join(timeout)
        with self._lock:
            self._segment = self._clip = None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "source": self.name,
                "folder": str(self.folder),
                "mode": self.options.mode,
                "file": str(self._clip or self._segment) if (self._clip or self._segment) else None,
                "queued": self._queue.qsize(),
                **self.stats.__dict__,
            }

    # ------------------------------------------------------------------ recorder thread

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.options.idle_close_s)
            except queue.Empty:
                if self._encoder is not None:
                    self._guarded(self._finish)
                continue
            if item is _STOP:
                self._guarded(self._finish)
                return
            self._guarded(self._write_frame, *item)

    def _guarded(self, step, *args) -> None:
        try:
            step(*args)
        except Exception as exc:  # recording trouble (disk full, codec) must not kill the thread
            message = f"{type(exc).__name__}: {exc}"
            if message != self.stats.last_error:
                logger.error("recorder %s: %s", self.name, message)
            self.stats.last_error = message
            self._abandon()

    def _write_frame(self, frame: np.ndarray, t: float, fps: float | None, cmds: list[tuple]) -> None:
        if any(c[0] == "restart" for c in cmds):
            self._finish()
            cmds = [c for c in cmds if c[0] != "restart"]
        if self.options.continuous and not self._segment_expected and not any(c[0] == "segment" for c in cmds):
            # The planner thinks a segment is open but this thread closed it (idle or error).
            with self._lock:
                path = self._new_path("segment", time.time())
                self._segment = path
            cmds = [("segment", path), *cmds]
        if self._encoder is None:
            h, w = frame.shape[:2]
            self._encoder = PacketEncoder(self.options.encoder, w, h, fps or 30.0)
            self.stats.codec = self._encoder.codec
            self._t0 = t
        keyframe = any(c[0] == "segment" for c in cmds)
        self._segment_expected |= keyframe
        packets = self._encoder.encode(frame, t - self._t0, keyframe=keyframe)
        self._fifo.append((self._encoder.last_pts, cmds))
        for packet in packets:
            self._route(packet)

    def _route(self, packet: EncodedPacket) -> None:
        while self._fifo and self._fifo[0][0] <= packet.pts:
            for cmd in self._fifo.popleft()[1]:
                self._apply(cmd)
        wrote = False
        for target in (self._segment_file, self._clip_file):
            if target is not None:
                wrote |= target.write(packet)
        if wrote:
            self.stats.frames_written += 1
        if self.options.events:
            self._ring.append(packet)
            horizon = packet.seconds - self.options.pre_roll_s - 2 * self.options.encoder.keyframe_interval_s - 1.0
            while self._ring and self._ring[0].seconds < horizon:
                self._ring.popleft()

    def _apply(self, cmd: tuple) -> None:
        kind = cmd[0]
        if kind == "segment":
            self._close_file("_segment_file")
            self._segment_file = self._open_file(cmd[1])
        elif kind == "clip_close":
            self._close_file("_clip_file")
        elif kind == "clip_open":
            self._close_file("_clip_file")
            clip = self._open_file(cmd[1])
            self._clip_file = clip
            start_rel = cmd[2] - self._t0
            ring = list(self._ring)
            keys = [i for i, p in enumerate(ring) if p.keyframe]
            before = [i for i in keys if ring[i].seconds <= start_rel]
            first = before[-1] if before else (keys[0] if keys else len(ring))
            for p in ring[first:]:
                clip.write(p)

    def _open_file(self, path: Path) -> Mp4File:
        mp4 = Mp4File(path, self._encoder)
        with self._lock:
            self._open_paths.add(mp4.path)
        return mp4

    def _close_file(self, attr: str) -> None:
        mp4: Mp4File | None = getattr(self, attr)
        setattr(self, attr, None)
        if mp4 is None:
            return
        try:
            mp4.close()
        finally:
            with self._lock:
                self._open_paths.discard(mp4.path)
                if attr == "_clip_file" and self._clip == mp4.path:
                    self._clip = None
            self.stats.files_finished += 1
            self.finished_files.append(mp4.path)

    def _finish(self) -> None:
        """Drain the encoder into the open files, close them, forget the encoder."""
        encoder = self._encoder
        try:
            if encoder is not None:
                for packet in encoder.flush():
                    self._route(packet)  # may open a file: needs self._encoder
            while self._fifo:  # commands of frames that produced no packet
                for cmd in self._fifo.popleft()[1]:
                    if cmd[0] == "clip_close":
                        self._apply(cmd)
        finally:
            self._encoder = None
            self._segment_expected = False
            self._close_file("_segment_file")
            self._close_file("_clip_file")
            self._ring.clear()
            self._fifo.clear()

    def _abandon(self) -> None:
        for attr in ("_segment_file", "_clip_file"):
            try:
                self._close_file(attr)
            except Exception:  # already failing; the file may be unusable
                pass
        self._encoder = None
        self._segment_expected = False
        self._ring.clear()
        self._fifo.clear()


@dataclass
class _RecordingSet:
    recorders: dict[str, SourceRecorder] = field(default_factory=dict)


class RecordingService:
    """Recorders of a runtime context, inside ``root``, with retention per output folder."""

    def __init__(self, root: Path, defaults: RecordingConfig):
        self.root = Path(root)
        self.defaults = defaults
        self.retention = RetentionWorker(interval_s=defaults.retention.interval_s)
        self._sets: dict[Path, _RecordingSet] = {}
        self._lock = threading.Lock()

    def resolve_directory(self, directory: str | Path) -> Path:
        return resolve_inside(self.root, directory)

    def recorder(
        self,
        directory: str | Path,
        source: Any,
        options: RecorderOptions | None = None,
        retention: RetentionPolicy | None = None,
    ) -> SourceRecorder:
        """The recorder of ``source`` under ``directory`` (created on first use)."""
        folder = self.resolve_directory(directory)
        with self._lock:
            rec_set = self._sets.get(folder)
            if rec_set is None:
                rec_set = self._sets[folder] = _RecordingSet()
            key = str(source)
            rec = rec_set.recorders.get(key)
            if rec is None:
                opts = options or RecorderOptions.from_config(self.defaults)
                rec = SourceRecorder(folder / source_folder_name(source), opts, name=source_folder_name(source))
                rec_set.recorders[key] = rec
                policy = retention or RetentionPolicy.from_config(self.defaults.retention)
                self.retention.register(folder, policy, lambda s=rec_set: self._open_files(s))
            return rec

    @staticmethod
    def _open_files(rec_set: _RecordingSet) -> set[Path]:
        files: set[Path] = set()
        for rec in list(rec_set.recorders.values()):
            files |= rec.open_files()
        return files

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            recorders = [r for s in self._sets.values() for r in s.recorders.values()]
        return [r.describe() for r in recorders]

    def close(self) -> None:
        with self._lock:
            recorders = [r for s in self._sets.values() for r in s.recorders.values()]
            self._sets.clear()
        for rec in recorders:
            rec.close()
        self.retention.close()

