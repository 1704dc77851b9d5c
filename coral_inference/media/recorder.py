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

The caller's side is a pure ``RecordingPlanner`` that returns typed commands
(``OpenSegment``, ``OpenClip``, ``CloseClip``, ``Restart``); the recorder thread
applies them. A write that fails (disk full, an I/O error) puts the recorder in
one error state (``health()``): frames are dropped and counted, no file is
opened, one log line says why, and writing is retried with a growing back-off —
for a full disk only once free space is back.

``RecordingService`` (one per runtime context) hands out recorders inside the
configured recordings root and runs retention for their folders.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import queue
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
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
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
RESUME_FREE_BYTES = 16 * 1024 * 1024  # a full disk is retried once this much is free again


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
    resume_free_bytes: int = (
        RESUME_FREE_BYTES  # after a full disk, write again once this much is free
    )
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
        encoder_fields = {
            "codec",
            "preset",
            "crf",
            "keyframe_interval_s",
            "threads",
            "width",
            "height",
            "fps",
        }
        given = {k: v for k, v in overrides.items() if v is not None}
        encoder = EncoderSettings(
            codec=cfg.codec,
            preset=cfg.preset,
            crf=cfg.crf,
            keyframe_interval_s=cfg.keyframe_interval_s,
            threads=cfg.threads,
        )
        encoder = replace(encoder, **{k: v for k, v in given.items() if k in encoder_fields})
        base = cls(
            segment_seconds=cfg.segment_seconds,
            queue_frames=cfg.queue_frames,
            idle_close_s=cfg.idle_close_s,
        )
        return replace(
            base, encoder=encoder, **{k: v for k, v in given.items() if k not in encoder_fields}
        )


@dataclass
class RecorderStats:
    frames_submitted: int = 0
    frames_dropped: int = 0
    frames_written: int = 0
    frames_processed: int = 0  # frames the recorder thread took off the queue (written or dropped)
    files_finished: int = 0
    codec: str | None = None
    last_error: str | None = None


@dataclass
class SubmitResult:
    accepted: bool
    file: Path | None
    error: str | None = None


# ---------------------------------------------------------------------- planner commands


@dataclass(frozen=True)
class Restart:
    """The source restarted or paused: finish the open files before this frame."""


@dataclass(frozen=True)
class OpenSegment:
    path: Path


@dataclass(frozen=True)
class OpenClip:
    path: Path
    preroll_from: float  # media time the clip starts at (pre-roll included)


@dataclass(frozen=True)
class CloseClip:
    pass


Command = Restart | OpenSegment | OpenClip | CloseClip


class RecordingPlanner:
    """Decides, per frame, which files open and close; pure (no thread, no encoder).

    ``exists`` tells whether a file name is taken (the folder on disk by default).
    """

    def __init__(
        self,
        folder: Path,
        options: RecorderOptions,
        *,
        exists: Callable[[Path], bool] | None = None,
    ):
        self.folder = Path(folder)
        self.options = options
        self._exists = exists or (lambda path: path.exists())
        self.segment: Path | None = None
        self.segment_start = 0.0
        self.clip: Path | None = None
        self.clip_start = 0.0
        self.clip_until = 0.0
        self.last_media: float | None = None
        self.last_submit: float | None = None
        self._names: set[str] = set()

    @property
    def current_file(self) -> Path | None:
        return self.clip or self.segment

    def plan(self, t: float, now: float, wall: float, trigger: bool | None) -> list[Command]:
        """Commands for a frame at media time ``t``, submitted at monotonic ``now``."""
        opts = self.options
        cmds: list[Command] = []
        restarted = self.last_media is not None and (
            t < self.last_media or now - (self.last_submit or now) >= opts.idle_close_s
        )
        if restarted:
            cmds.append(Restart())
            self.segment = self.clip = None
        if opts.continuous and (
            self.segment is None or t - self.segment_start >= opts.segment_seconds
        ):
            self.segment, self.segment_start = self.new_path("segment", wall), t
            cmds.append(OpenSegment(self.segment))
        if opts.events:
            rotated = False
            if self.clip is not None and (
                t > self.clip_until or t - self.clip_start >= opts.max_clip_s
            ):
                rotated = t - self.clip_start >= opts.max_clip_s
                cmds.append(CloseClip())
                self.clip = None
            if trigger and self.clip is None:
                self.clip, self.clip_start = self.new_path("event", wall), t
                cmds.append(OpenClip(self.clip, t if rotated else t - opts.pre_roll_s))
            if trigger:
                self.clip_until = t + opts.post_roll_s
        self.last_media, self.last_submit = t, now
        return cmds

    def new_path(self, kind: str, wall: float) -> Path:
        stem = f"{kind}_{file_stamp(wall)}"
        name, n = f"{stem}.mp4", 1
        while name in self._names or self._exists(self.folder / name):
            name, n = f"{stem}-{n}.mp4", n + 1
        self._names.add(name)
        if len(self._names) > 4096:
            self._names = {name}
        return self.folder / name


# ---------------------------------------------------------------------- health


class RecorderState(str, Enum):
    IDLE = "idle"  # no frame yet, or files finished after the source went quiet
    RECORDING = "recording"
    DISK_FULL = "disk_full"  # frames dropped until free space is back
    FAILED = "failed"  # another write error; retried with back-off


@dataclass(frozen=True)
class RecorderHealth:
    """One recorder's state, for the block's output, the pipeline status and health checks."""

    source: str
    state: RecorderState
    error: str | None = None
    since: float | None = None  # monotonic time the state began
    retry_at: float | None = None  # monotonic time of the next write attempt (error states)
    frames_dropped_in_error: int = 0

    @property
    def ok(self) -> bool:
        return self.state in (RecorderState.IDLE, RecorderState.RECORDING)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def resolve_inside(root: Path, directory: str | Path) -> Path:
    """``directory`` (relative to ``root`` or absolute) if it lies inside ``root``."""
    root = Path(root).resolve()
    target = (root / Path(directory)).resolve()
    if target != root and root not in target.parents:
        raise OutsideRecordingsRootError(
            f"recording directory {str(directory)!r} resolves to {target}, "
            "outside the recordings root "
            f"{root} (config storage.recordings); use a path relative to that root"
        )
    return target


def source_folder_name(source: Any) -> str:
    """A file-system-safe, readable folder name for a video source (URL, path, index)."""
    text = str(source)
    visible = text
    if "://" in text:  # folder names show up in listings: never the URL's credentials
        parts = urlsplit(text)
        port = f"_{parts.port}" if parts.port else ""
        visible = f"{parts.scheme}_{parts.hostname or ''}{port}{parts.path}"
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

    def __init__(
        self,
        folder: Path,
        options: RecorderOptions,
        *,
        name: str = "source",
        clock: Callable[[], float] = time.monotonic,
        free_bytes: Callable[[Path], int] | None = None,
        open_file: Callable[[Path, PacketEncoder], Mp4File] = Mp4File,
    ):
        self.folder = Path(folder)
        self.options = options
        self.name = name
        self.stats = RecorderStats()
        self._clock = clock
        self._free_bytes = free_bytes or _free_bytes
        self._open_mp4 = open_file
        self._queue: queue.Queue = queue.Queue(maxsize=options.queue_frames)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # planner (caller side, under _lock)
        self._planner = RecordingPlanner(self.folder, options)
        self._pending: list[Command] = []
        # writer state (recorder thread); _open_paths and _health read by others under _lock
        self._open_paths: set[Path] = set()
        self._encoder: PacketEncoder | None = None
        self._t0 = 0.0
        self._segment_file: Mp4File | None = None
        self._clip_file: Mp4File | None = None
        self._ring: deque[EncodedPacket] = deque()
        self._fifo: deque[tuple[int, list[Command]]] = deque()
        self._segment_expected = False  # a segment is open or its first frame is in the encoder
        self._health = RecorderHealth(source=name, state=RecorderState.IDLE)
        self._backoff = RETRY_FIRST_S
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
        with self._lock:
            if self._closed:
                return SubmitResult(False, None, "recorder is closed")
            cmds = self._pending + self._planner.plan(t, now, wall, trigger)
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
                self._thread = threading.Thread(
                    target=self._run, name=f"coral-recorder-{self.name}", daemon=True
                )
                self._thread.start()
            return SubmitResult(accepted, self._planner.current_file, self._health.error)

    @property
    def current_file(self) -> Path | None:
        with self._lock:
            return self._planner.current_file

    def open_files(self) -> set[Path]:
        """Files being written (retention must not delete them)."""
        with self._lock:
            planned = {p for p in (self._planner.segment, self._planner.clip) if p is not None}
            return set(self._open_paths) | planned

    def health(self) -> RecorderHealth:
        """The recorder's state: recording, idle, or an error state with its message."""
        with self._lock:
            return self._health

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
            logger.warning(
                "recorder %s: queue still full after %.0fs; closing anyway", self.name, timeout
            )
        thread.join(timeout)
        with self._lock:
            self._planner.segment = self._planner.clip = None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            current = self._planner.current_file
            health = self._health
            return {
                "source": self.name,
                "folder": str(self.folder),
                "mode": self.options.mode,
                "file": str(current) if current else None,
                "queued": self._queue.qsize(),
                "state": health.state.value,
                "error": health.error,
                **self.stats.__dict__,
            }

    # ------------------------------------------------------------------ recorder thread

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.options.idle_close_s)
            except queue.Empty:
                if self._encoder is not None and self._guarded(self._finish):
                    self._set_state(RecorderState.IDLE)
                continue
            if item is _STOP:
                self._guarded(self._finish)
                return
            if not self._ready_to_write():
                with self._lock:
                    self.stats.frames_dropped += 1
                    self.stats.frames_processed += 1
                    dropped = self._health.frames_dropped_in_error + 1
                    self._health = replace(self._health, frames_dropped_in_error=dropped)
                continue
            if self._guarded(self._write_frame, *item):
                self._set_state(RecorderState.RECORDING)
            self.stats.frames_processed += 1

    def _ready_to_write(self) -> bool:
        """False in an error state before its retry time (disk full: before space is back)."""
        health = self._health
        if health.ok or health.retry_at is None:
            return True
        now = self._clock()
        if now < health.retry_at:
            return False
        if health.state is RecorderState.DISK_FULL:
            try:
                free = self._free_bytes(self.folder)
            except OSError:
                free = 0
            if free < self.options.resume_free_bytes:
                with self._lock:
                    self._health = replace(health, retry_at=now + self._next_backoff())
                return False
        return True

    def _next_backoff(self) -> float:
        delay = self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MAX_S)
        return delay

    def _set_state(self, state: RecorderState) -> None:
        previous = self._health
        if previous.state is state:
            return
        if not previous.ok:
            logger.warning(
                "recorder %s: writing again after %s (%d frame(s) dropped meanwhile)",
                self.name,
                previous.state.value,
                previous.frames_dropped_in_error,
            )
        self._backoff = RETRY_FIRST_S
        with self._lock:
            self._health = RecorderHealth(source=self.name, state=state, since=self._clock())

    def _guarded(self, step: Callable[..., None], *args: Any) -> bool:
        try:
            step(*args)
            return True
        except Exception as exc:  # recording trouble (disk full, codec) must not kill the thread
            self._fail(exc)
            return False

    def _fail(self, exc: Exception) -> None:
        """Enter (or stay in) an error state: one log line, files abandoned, retry later."""
        state = RecorderState.DISK_FULL if is_disk_full(exc) else RecorderState.FAILED
        message = f"{type(exc).__name__}: {exc}"
        if state is RecorderState.DISK_FULL:
            message = (
                f"disk full in {self.folder} ({message}); "
                "frames are dropped until space is free again"
            )
        previous = self._health
        if previous.state is not state:
            logger.error("recorder %s: %s", self.name, message)
        now = self._clock()
        with self._lock:
            self.stats.last_error = message
            self._health = RecorderHealth(
                source=self.name,
                state=state,
                error=message,
                since=previous.since if previous.state is state else now,
                retry_at=now + self._next_backoff(),
                frames_dropped_in_error=previous.frames_dropped_in_error
                if previous.state is state
                else 0,
            )
        self._abandon()

    def _write_frame(
        self, frame: np.ndarray, t: float, fps: float | None, cmds: list[Command]
    ) -> None:
        if any(isinstance(c, Restart) for c in cmds):
            self._finish()
            cmds = [c for c in cmds if not isinstance(c, Restart)]
        if (
            self.options.continuous
            and not self._segment_expected
            and not any(isinstance(c, OpenSegment) for c in cmds)
        ):
            # The planner thinks a segment is open but this thread closed it (idle or error).
            with self._lock:
                path = self._planner.segment = self._planner.new_path("segment", time.time())
            cmds = [OpenSegment(path), *cmds]
        if self._encoder is None:
            h, w = frame.shape[:2]
            self._encoder = PacketEncoder(self.options.encoder, w, h, fps or 30.0)
            self.stats.codec = self._encoder.codec
            self._t0 = t
        keyframe = any(isinstance(c, OpenSegment) for c in cmds)
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
            horizon = (
                packet.seconds
                - self.options.pre_roll_s
                - 2 * self.options.encoder.keyframe_interval_s
                - 1.0
            )
            while self._ring and self._ring[0].seconds < horizon:
                self._ring.popleft()

    def _apply(self, cmd: Command) -> None:
        if isinstance(cmd, OpenSegment):
            self._close_file("_segment_file")
            self._segment_file = self._open_file(cmd.path)
        elif isinstance(cmd, CloseClip):
            self._close_file("_clip_file")
        elif isinstance(cmd, OpenClip):
            self._close_file("_clip_file")
            clip = self._open_file(cmd.path)
            self._clip_file = clip
            start_rel = cmd.preroll_from - self._t0
            ring = list(self._ring)
            keys = [i for i, p in enumerate(ring) if p.keyframe]
            before = [i for i in keys if ring[i].seconds <= start_rel]
            first = before[-1] if before else (keys[0] if keys else len(ring))
            for p in ring[first:]:
                clip.write(p)

    def _open_file(self, path: Path) -> Mp4File:
        assert self._encoder is not None  # a file opens for a packet of the current encoder
        with self._lock:
            self._open_paths.add(path)
        try:
            mp4 = self._open_mp4(path, self._encoder)
        except BaseException:
            with self._lock:
                self._open_paths.discard(path)
            _remove_if_empty(path)  # a failed open (disk full) leaves no empty file behind
            raise
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
                if attr == "_clip_file" and self._planner.clip == mp4.path:
                    self._planner.clip = None
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
                    if isinstance(cmd, CloseClip):
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
            mp4: Mp4File | None = getattr(self, attr)
            with contextlib.suppress(Exception):  # already failing; the file may be unusable
                self._close_file(attr)
            if mp4 is not None:
                _remove_if_empty(mp4.path)
        self._encoder = None
        self._segment_expected = False
        self._ring.clear()
        self._fifo.clear()


def _free_bytes(folder: Path) -> int:
    probe = folder if folder.exists() else folder.parent
    return shutil.disk_usage(probe).free


def _remove_if_empty(path: Path) -> None:
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


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
                rec = SourceRecorder(
                    folder / source_folder_name(source), opts, name=source_folder_name(source)
                )
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

    def health(self) -> list[RecorderHealth]:
        """Every recorder's state; an entry that is not ``ok`` names its error."""
        with self._lock:
            recorders = [r for s in self._sets.values() for r in s.recorders.values()]
        return [r.health() for r in recorders]

    def close(self) -> None:
        with self._lock:
            recorders = [r for s in self._sets.values() for r in s.recorders.values()]
            self._sets.clear()
        for rec in recorders:
            rec.close()
        self.retention.close()
