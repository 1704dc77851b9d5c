"""A disk spool of line-protocol batches kept while a metrics server is unreachable.

One file per batch, named by a sequence number, written to a temporary name and
renamed so a crash never leaves half a batch. Replay reads the oldest file and
removes it only after the server accepted it, so batches survive a restart and
go out in the order they were written. The spool is bounded: past
``max_bytes`` the oldest batches are dropped (and counted).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".lp"


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    lines: list[str]


class DiskSpool:
    def __init__(self, directory: Path, max_bytes: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        for leftover in self.directory.glob("*.tmp"):  # a crash mid-write: never a complete batch
            leftover.unlink(missing_ok=True)
        self._files: dict[Path, tuple[int, int]] = {}  # path -> (bytes, lines), oldest first
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            data = path.read_bytes()
            self._files[path] = (len(data), data.count(b"\n"))
        self._next = max((int(p.stem) for p in self._files), default=0) + 1
        self.dropped_lines = 0

    def __len__(self) -> int:
        return len(self._files)

    @property
    def size_bytes(self) -> int:
        return sum(size for size, _ in self._files.values())

    @property
    def lines(self) -> int:
        return sum(n for _, n in self._files.values())

    def append(self, lines: list[str]) -> int:
        """Write a batch; returns the number of lines dropped to stay under ``max_bytes``."""
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            path = self.directory / f"{self._next:016d}{SUFFIX}"
            self._next += 1
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self._files[path] = (len(data), len(lines))
            dropped = 0
            while self.size_bytes > self.max_bytes and len(self._files) > 1:
                oldest = next(iter(self._files))
                _, n = self._files.pop(oldest)
                oldest.unlink(missing_ok=True)
                dropped += n
            self.dropped_lines += dropped
            return dropped

    def oldest(self) -> SpooledBatch | None:
        with self._lock:
            if not self._files:
                return None
            path = next(iter(self._files))
        text = path.read_text()
        return SpooledBatch(path=path, lines=[line for line in text.split("\n") if line])

    def remove(self, batch: SpooledBatch) -> None:
        with self._lock:
            self._files.pop(batch.path, None)
        batch.path.unlink(missing_ok=True)
