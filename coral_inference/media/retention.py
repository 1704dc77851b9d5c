"""Retention of recordings: by age, total size and free disk, on a thread of its own.

``RetentionPolicy.select`` is the pure decision (oldest files first, never a
protected file); ``enforce`` applies it to one folder; ``RetentionWorker`` runs
``enforce`` periodically for every registered folder, asking each registration
which files are being written right now so they are never deleted, and
``enforce_quota`` for named quotas over several roots (the web monitor's disk
quota). The ``RetentionWorker`` of the runtime's ``RecordingService`` is the one
component that deletes recordings; everyone else (the monitor) reports.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coral_inference.config.schema import RetentionConfig

logger = logging.getLogger("coral_inference.media.retention")

GB = 1024**3
RECORDING_PATTERNS = ("*.mp4",)


@dataclass(frozen=True)
class RecordingFile:
    path: Path
    size: int
    mtime: float


@dataclass(frozen=True)
class RetentionPolicy:
    """Limits for one recordings folder; None switches a limit off."""

    max_age_s: float | None = None
    max_bytes: int | None = None
    min_free_bytes: int | None = None

    @classmethod
    def from_config(cls, cfg: RetentionConfig, **overrides: float | None) -> RetentionPolicy:
        """From a ``RetentionConfig`` (hours/GB); ``overrides`` use the same field names."""
        values = {name: getattr(cfg, name) for name in ("max_age_hours", "max_gb", "min_free_gb")}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(
            max_age_s=None if values["max_age_hours"] is None else values["max_age_hours"] * 3600.0,
            max_bytes=None if values["max_gb"] is None else int(values["max_gb"] * GB),
            min_free_bytes=None
            if values["min_free_gb"] is None
            else int(values["min_free_gb"] * GB),
        )

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_age_s, self.max_bytes, self.min_free_bytes))

    def select(
        self,
        files: Sequence[RecordingFile],
        *,
        now: float,
        free_bytes: int | None,
        protected: Iterable[Path] = (),
    ) -> list[RecordingFile]:
        """Files to delete, oldest first, until every limit holds (protected files stay).

        >>> old = RecordingFile(Path("a.mp4"), 10, mtime=0.0)
        >>> RetentionPolicy(max_age_s=60).select([old], now=100.0, free_bytes=None)[0].path.name
        'a.mp4'
        """
        keep = {os.path.realpath(p) for p in protected}  # realpath: never raises on a loop
        total = sum(f.size for f in files)
        free = free_bytes
        doomed = []
        for f in sorted(files, key=lambda f: f.mtime):
            too_old = self.max_age_s is not None and now - f.mtime > self.max_age_s
            too_big = self.max_bytes is not None and total > self.max_bytes
            too_full = (
                self.min_free_bytes is not None and free is not None and free < self.min_free_bytes
            )
            if not (too_old or too_big or too_full):
                break  # younger files are not older, and size and free space already hold
            if os.path.realpath(f.path) in keep:
                continue
            doomed.append(f)
            total -= f.size
            if free is not None:
                free += f.size
        return doomed


def scan(folder: Path, patterns: Sequence[str] = RECORDING_PATTERNS) -> list[RecordingFile]:
    """Regular recording files under ``folder`` (recursively), oldest first.

    Only regular files count: a symlink (even a loop named ``*.mp4``), a directory
    or a file that vanished meanwhile is skipped, never followed and never deleted,
    so one odd entry cannot stop retention of its folder.
    """
    files = []
    for pattern in patterns:
        for path in Path(folder).rglob(pattern):
            try:
                st = path.lstat()
            except OSError:  # vanished, or unreadable: not ours to judge
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            files.append(RecordingFile(path=path, size=st.st_size, mtime=st.st_mtime))
    return sorted(files, key=lambda f: f.mtime)


@dataclass
class RetentionReport:
    folder: Path
    deleted: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    remaining_bytes: int = 0
    errors: list[str] = field(default_factory=list)


def enforce(
    folder: Path, policy: RetentionPolicy, protected: Iterable[Path] = (), now: float | None = None
) -> RetentionReport:
    """Delete what ``policy`` selects in ``folder``; never a file in ``protected``."""
    report = RetentionReport(folder=Path(folder))
    if not Path(folder).is_dir():
        return report
    files = scan(folder)
    free = shutil.disk_usage(folder).free if policy.min_free_bytes is not None else None
    doomed = policy.select(
        files, now=time.time() if now is None else now, free_bytes=free, protected=protected
    )
    report.deleted, report.freed_bytes, report.errors = delete_files(doomed)
    report.remaining_bytes = sum(f.size for f in files) - report.freed_bytes
    return report


def delete_files(doomed: Iterable[RecordingFile]) -> tuple[list[Path], int, list[str]]:
    """Unlink each file: ``(deleted, bytes freed, errors)``; one already gone is skipped."""
    deleted: list[Path] = []
    freed = 0
    errors: list[str] = []
    for f in doomed:
        try:
            f.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(f"{f.path}: {exc}")
            continue
        deleted.append(f.path)
        freed += f.size
    return deleted, freed, errors


def enforce_quota(
    roots: Sequence[Path],
    policy: RetentionPolicy,
    *,
    spare_younger_than_s: float,
    now: float | None = None,
) -> RetentionReport:
    """One quota over every regular file under ``roots`` (recordings and results alike).

    Files modified in the last ``spare_younger_than_s`` seconds may still be written
    and are spared; the free-space floor is measured on the first existing root.
    """
    now = time.time() if now is None else now
    existing = [Path(root) for root in roots if Path(root).is_dir()]
    report = RetentionReport(folder=Path(roots[0]) if roots else Path("."))
    files = sorted((f for root in existing for f in scan(root, ("*",))), key=lambda f: f.mtime)
    protected = [f.path for f in files if now - f.mtime < spare_younger_than_s]
    free = None
    if policy.min_free_bytes is not None:
        free = shutil.disk_usage(existing[0] if existing else Path(".")).free
    doomed = policy.select(files, now=now, free_bytes=free, protected=protected)
    report.deleted, report.freed_bytes, report.errors = delete_files(doomed)
    report.remaining_bytes = sum(f.size for f in files) - report.freed_bytes
    return report


@dataclass
class _Registration:
    policy: RetentionPolicy
    protected: Callable[[], Iterable[Path]]


@dataclass
class _Quota:
    roots: tuple[Path, ...]
    policy: RetentionPolicy
    spare_younger_than_s: float


class RetentionWorker:
    """Runs ``enforce`` for registered folders every ``interval_s`` on its own thread."""

    def __init__(self, interval_s: float = 30.0):
        self.interval_s = interval_s
        self._folders: dict[Path, _Registration] = {}
        self._quotas: dict[str, _Quota] = {}
        self.last_quota_reports: dict[str, RetentionReport] = {}
        self._lock = threading.Lock()
        self._quota_pass = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.deleted_files = 0
        self.freed_bytes = 0
        self.last_errors: list[str] = []

    def register(
        self, folder: Path, policy: RetentionPolicy, protected: Callable[[], Iterable[Path]] = tuple
    ) -> None:
        """Watch ``folder`` (the latest policy for a folder wins); starts the thread."""
        if not policy.active:
            return
        with self._lock:
            self._folders[Path(folder).resolve()] = _Registration(policy, protected)
            self._start()

    def register_quota(
        self,
        name: str,
        roots: Sequence[Path],
        policy: RetentionPolicy,
        *,
        spare_younger_than_s: float,
    ) -> None:
        """Keep every file under ``roots`` within ``policy`` (e.g. the monitoring disk quota)."""
        if not policy.active:
            return
        with self._lock:
            self._quotas[name] = _Quota(tuple(Path(r) for r in roots), policy, spare_younger_than_s)
            self._start()

    def run_quota(self, name: str, now: float | None = None) -> RetentionReport | None:
        """Enforce the named quota now (None when no such quota is registered)."""
        with self._lock:
            quota = self._quotas.get(name)
        if quota is None:
            return None
        # One pass at a time: a cleanup asked for over the API while the thread's pass runs
        # waits for it and then reports what is still over, not the same files twice.
        with self._quota_pass:
            report = enforce_quota(
                quota.roots, quota.policy, spare_younger_than_s=quota.spare_younger_than_s, now=now
            )
            self._account(quota.roots[0] if quota.roots else Path("."), report)
            self.last_quota_reports[name] = report
        return report

    def _account(self, folder: Path, report: RetentionReport) -> None:
        if report.deleted:
            logger.info(
                "retention: deleted %d file(s), %d bytes in %s",
                len(report.deleted),
                report.freed_bytes,
                folder,
            )
        self.deleted_files += len(report.deleted)
        self.freed_bytes += report.freed_bytes
        if report.errors:
            self.last_errors = report.errors
            logger.warning("retention in %s: %s", folder, "; ".join(report.errors))

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="coral-retention", daemon=True)
            self._thread.start()

    def run_once(self) -> list[RetentionReport]:
        with self._lock:
            registrations = list(self._folders.items())
            quotas = list(self._quotas)
        reports = []
        for folder, reg in registrations:
            try:
                report = enforce(folder, reg.policy, protected=list(reg.protected()))
            except Exception as exc:  # a bad folder must not stop retention of the others
                report = RetentionReport(folder=folder, errors=[f"{type(exc).__name__}: {exc}"])
            self._account(folder, report)
            reports.append(report)
        for name in quotas:
            try:
                quota_report = self.run_quota(name)
            except Exception as exc:  # as above: one bad quota must not stop the rest
                quota_report = RetentionReport(
                    folder=Path("."), errors=[f"{type(exc).__name__}: {exc}"]
                )
                self._account(Path("."), quota_report)
            if quota_report is not None:
                reports.append(quota_report)
        return reports

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
