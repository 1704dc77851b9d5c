"""A latest-frame slot in shared memory: a worker writes its preview, the web process reads it.

No JPEG round trip and no pipe traffic per frame: the worker copies each preview
frame (H×W×3 uint8 BGR) into one ``multiprocessing.shared_memory`` block; the web
process's stream hub and snapshot route copy it out only when a viewer or a
request wants it. A sequence number guards the copy (a seqlock: odd while the
writer writes, re-checked after the read), so a reader never keeps a torn frame.

The web process creates and unlinks the block (a crashed worker leaks nothing);
the worker only attaches to it.
"""

from __future__ import annotations

import contextlib
import struct
import time
from multiprocessing import shared_memory
from typing import NamedTuple

import numpy as np

# seq, frames, height, width, nbytes, wall time, fps
_HEADER = struct.Struct("<QQIIQdd")
HEADER_BYTES = 64
READ_ATTEMPTS = 8


class FrameSlotError(RuntimeError):
    pass


class FrameHeader(NamedTuple):
    seq: int
    frames: int
    height: int
    width: int
    wall_time: float
    fps: float


class FrameSlot:
    """One pipeline's latest preview frame in shared memory."""

    def __init__(self, shm: shared_memory.SharedMemory, *, owner: bool):
        self._shm = shm
        self._owner = owner
        self.capacity = shm.size - HEADER_BYTES
        self._last_write = 0.0
        self._fps = 0.0
        self._closed = False

    @property
    def _buf(self) -> memoryview:
        buf = self._shm.buf
        if buf is None:
            raise FrameSlotError(f"frame slot {self._shm.name} is closed")
        return buf

    @property
    def name(self) -> str:
        return self._shm.name

    @classmethod
    def create(cls, capacity: int) -> FrameSlot:
        """A new slot for frames of up to ``capacity`` bytes (the web process's side)."""
        if capacity < 3:
            raise FrameSlotError(
                f"a frame slot needs room for at least one pixel, got {capacity} bytes"
            )
        shm = shared_memory.SharedMemory(create=True, size=HEADER_BYTES + capacity)
        slot = cls(shm, owner=True)
        slot._buf[:HEADER_BYTES] = bytes(HEADER_BYTES)
        return slot

    @classmethod
    def attach(cls, name: str) -> FrameSlot:
        """The worker's side: attach to the slot the web process created."""
        # Workers come from the web process's forkserver and share its resource tracker,
        # which already tracks the block: nothing to register or unregister here.
        shm = shared_memory.SharedMemory(name=name)
        return cls(shm, owner=False)

    # ------------------------------------------------------------------ writer

    def write(self, frame: np.ndarray) -> None:
        """Make ``frame`` (H×W×3 uint8) the latest one; larger frames are scaled down to fit."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise FrameSlotError(f"preview frames are H×W×3 uint8, got {frame.shape} {frame.dtype}")
        if frame.nbytes > self.capacity:
            frame = _fit(frame, self.capacity)
        frame = np.ascontiguousarray(frame)
        height, width = frame.shape[:2]
        now = time.time()
        if self._last_write:
            dt = now - self._last_write
            if dt > 0:
                self._fps = 1.0 / dt if self._fps == 0 else 0.9 * self._fps + 0.1 / dt
        self._last_write = now
        buf = self._buf
        seq, frames = _HEADER.unpack_from(buf, 0)[:2]
        _HEADER.pack_into(
            buf, 0, seq + 1, frames, height, width, frame.nbytes, now, self._fps
        )  # odd: writing
        target = np.ndarray((frame.nbytes,), dtype=np.uint8, buffer=buf, offset=HEADER_BYTES)
        target[:] = frame.reshape(-1)
        del target
        _HEADER.pack_into(buf, 0, seq + 2, frames + 1, height, width, frame.nbytes, now, self._fps)

    # ------------------------------------------------------------------ reader

    def header(self) -> FrameHeader:
        seq, frames, height, width, _nbytes, wall, fps = _HEADER.unpack_from(self._buf, 0)
        return FrameHeader(seq, frames, height, width, wall, fps)

    def read(self) -> tuple[np.ndarray, FrameHeader] | None:
        """A copy of the latest frame and its header; None before the first frame."""
        buf = self._buf
        for _ in range(READ_ATTEMPTS):
            seq, frames, height, width, nbytes, wall, fps = _HEADER.unpack_from(buf, 0)
            if seq == 0:
                return None
            if seq % 2:  # being written
                time.sleep(0.0005)
                continue
            if nbytes != height * width * 3 or nbytes > self.capacity:
                return None
            view = np.ndarray((nbytes,), dtype=np.uint8, buffer=buf, offset=HEADER_BYTES)
            frame = view.copy().reshape(height, width, 3)
            del view
            if _HEADER.unpack_from(buf, 0)[0] == seq:
                return frame, FrameHeader(seq, frames, height, width, wall, fps)
        return None

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Detach; the owner also removes the block."""
        if self._closed:
            return
        self._closed = True
        # A reader's view still alive: the mapping goes with the process.
        with contextlib.suppress(BufferError):
            self._shm.close()
        if self._owner:
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()


def _fit(frame: np.ndarray, capacity: int) -> np.ndarray:
    # OpenCV (cv2, ~100 modules) only for a frame larger than the slot
    import cv2

    scale = (capacity / frame.nbytes) ** 0.5
    height = max(1, int(frame.shape[0] * scale))
    width = max(1, int(frame.shape[1] * scale))
    while height * width * 3 > capacity:
        height, width = max(1, height - 1), max(1, width - 1)
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
