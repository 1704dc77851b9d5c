"""The recorder's pure planner (typed commands, no encoder) and its disk-full behaviour (13.5)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from coral_inference.media.encoder import EncoderSettings, Mp4File
from coral_inference.media.recorder import (
    CloseClip,
    OpenClip,
    OpenSegment,
    RecorderOptions,
    RecorderState,
    RecordingPlanner,
    Restart,
    SourceRecorder,
)
from tests.support import wait_until

from .frames import decode, moving_bar

FAST = EncoderSettings(preset="ultrafast", keyframe_interval_s=0.5)
WALL = 1_800_000_000.0


def planner(**kw) -> RecordingPlanner:
    return RecordingPlanner(Path("/rec/cam"), RecorderOptions(**kw), exists=lambda path: False)


def test_continuous_segments_rotate_on_media_time():
    plan = planner(segment_seconds=2)
    first = plan.plan(0.0, now=0.0, wall=WALL, trigger=None)
    assert first == [OpenSegment(Path("/rec/cam/segment_20270115T080000.000Z.mp4"))]
    assert plan.plan(1.9, now=1.9, wall=WALL + 1.9, trigger=None) == []
    rotated = plan.plan(2.0, now=2.0, wall=WALL + 2, trigger=None)
    assert rotated == [OpenSegment(Path("/rec/cam/segment_20270115T080002.000Z.mp4"))]


def test_event_clip_opens_with_pre_roll_and_closes_after_post_roll():
    plan = planner(mode="events", pre_roll_s=3, post_roll_s=2)
    assert plan.plan(10.0, now=10.0, wall=WALL, trigger=False) == []
    opened = plan.plan(11.0, now=11.0, wall=WALL + 1, trigger=True)
    assert opened == [OpenClip(Path("/rec/cam/event_20270115T080001.000Z.mp4"), preroll_from=8.0)]
    assert plan.plan(12.5, now=12.5, wall=WALL + 2.5, trigger=False) == []  # within post-roll
    assert plan.plan(13.5, now=13.5, wall=WALL + 3.5, trigger=False) == [CloseClip()]
    assert plan.current_file is None


def test_a_long_event_rotates_without_repeating_the_pre_roll():
    plan = planner(mode="events", pre_roll_s=3, max_clip_s=5)
    plan.plan(0.0, now=0.0, wall=WALL, trigger=True)
    cmds = plan.plan(5.0, now=5.0, wall=WALL + 5, trigger=True)
    assert cmds[0] == CloseClip() and isinstance(cmds[1], OpenClip) and cmds[1].preroll_from == 5.0


def test_a_restarted_or_paused_source_gets_new_files():
    plan = planner(segment_seconds=60, idle_close_s=5)
    plan.plan(30.0, now=100.0, wall=WALL, trigger=None)
    back_in_time = plan.plan(1.0, now=100.1, wall=WALL + 1, trigger=None)
    assert back_in_time[0] == Restart() and isinstance(back_in_time[1], OpenSegment)
    paused = plan.plan(2.0, now=110.0, wall=WALL + 10, trigger=None)
    assert paused[0] == Restart()


def test_names_taken_on_disk_or_earlier_get_a_suffix():
    taken = {Path("/rec/cam/segment_20270115T080000.000Z.mp4")}
    plan = RecordingPlanner(Path("/rec/cam"), RecorderOptions(), exists=lambda path: path in taken)
    assert plan.new_path("segment", WALL).name == "segment_20270115T080000.000Z-1.mp4"
    assert plan.new_path("segment", WALL).name == "segment_20270115T080000.000Z-2.mp4"


# ---------------------------------------------------------------------- disk full


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FullDisk:
    """Stands in for a full file system: opening a file creates it empty, then ENOSPC."""

    def __init__(self) -> None:
        self.full = True
        self.attempts = 0

    def open(self, path: Path, encoder) -> Mp4File:
        self.attempts += 1
        if self.full:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return Mp4File(path, encoder)

    def free_bytes(self, folder: Path) -> int:
        return 0 if self.full else 10**12


def submit(rec: SourceRecorder, frames: range) -> None:
    for i in frames:
        rec.submit(moving_bar(i), media_time=i / 30, wall_time=WALL + i / 30, fps=30)


def test_a_full_disk_backs_off_with_one_error_and_resumes_when_space_returns(tmp_path, caplog):
    clock, disk = FakeClock(), FullDisk()
    rec = SourceRecorder(
        tmp_path / "cam",
        RecorderOptions(encoder=FAST, queue_frames=1000),
        name="cam",
        clock=clock,
        free_bytes=disk.free_bytes,
        open_file=disk.open,
    )
    caplog.set_level(logging.WARNING, logger="coral_inference.media.recorder")
    submit(rec, range(30))
    wait_until(lambda: rec.stats.frames_processed == 30, message="30 frames handled")
    health = rec.health()
    assert health.state is RecorderState.DISK_FULL and "disk full" in (health.error or "")
    # the encoder may hold the first frame or two before the first packet opens the file
    assert 27 <= health.frames_dropped_in_error <= 29 and disk.attempts == 1
    assert list((tmp_path / "cam").glob("*.mp4")) == []  # the empty file of the failed open is gone
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "disk full" in errors[0].getMessage()

    clock.now += 1.5  # retry time reached, but the disk is still full: no new file is tried
    submit(rec, range(30, 40))
    wait_until(lambda: rec.stats.frames_processed == 40, message="40 frames handled")
    assert disk.attempts == 1 and rec.health().state is RecorderState.DISK_FULL
    result = rec.submit(moving_bar(40), media_time=40 / 30, wall_time=WALL, fps=30)
    assert result.error and "disk full" in result.error

    disk.full = False
    clock.now += 60
    submit(rec, range(41, 71))
    wait_until(lambda: rec.stats.frames_processed == 71, message="71 frames handled")
    assert rec.health().state is RecorderState.RECORDING and rec.health().error is None
    assert rec.submit(moving_bar(71), media_time=71 / 30, wall_time=WALL, fps=30).error is None
    rec.close()
    files = list((tmp_path / "cam").glob("*.mp4"))
    assert len(files) == 1 and decode(files[0])[0] >= 30
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert any("writing again" in r.getMessage() for r in caplog.records)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


@pytest.mark.optional  # needs permission to mount a tmpfs (root, or a container that allows it)
def test_a_real_full_tmpfs_leaves_no_empty_files_and_recording_resumes(tmp_path, caplog):
    mount = tmp_path / "small"
    if not _mount_tmpfs(mount, "400k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        caplog.set_level(logging.WARNING, logger="coral_inference.media.recorder")
        options = RecorderOptions(
            encoder=FAST, queue_frames=1000, segment_seconds=1, resume_free_bytes=100_000
        )
        rec = SourceRecorder(mount / "cam", options, name="cam")
        i = 0
        while rec.health().state is not RecorderState.DISK_FULL and i < 3000:  # noise fills it fast
            rec.submit(
                moving_bar(i, noise=True), media_time=i / 30, wall_time=WALL + i / 30, fps=30
            )
            i += 1
            if i % 30 == 0:
                wait_until(
                    lambda n=i: rec.stats.frames_processed >= n - 5, message="recorder keeps up"
                )
        wait_until(lambda: rec.health().state is RecorderState.DISK_FULL, message="disk full state")
        for n in range(60):  # more frames on the full disk: dropped, no new files
            rec.submit(
                moving_bar(i + n, noise=True), media_time=(i + n) / 30, wall_time=WALL, fps=30
            )
        wait_until(
            lambda: rec.stats.frames_processed >= i + 60 - 1,
            message="frames on a full disk handled",
        )
        files = sorted((mount / "cam").glob("*.mp4"))
        assert all(f.stat().st_size > 0 for f in files), [(f.name, f.stat().st_size) for f in files]
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
        for f in files:  # space returns
            f.unlink()
        i += 60
        deadline_frames = i + 300
        while rec.health().state is not RecorderState.RECORDING and i < deadline_frames:
            rec.submit(moving_bar(i), media_time=i / 30, wall_time=WALL + i / 30, fps=30)
            i += 1
            wait_until(lambda n=i: rec.stats.frames_processed >= n - 1, message="recorder keeps up")
            if rec.health().state is not RecorderState.RECORDING:
                import time

                time.sleep(0.05)  # the real back-off (1 s first) has to pass
        assert rec.health().state is RecorderState.RECORDING
        rec.close()
        assert any(f.stat().st_size > 0 for f in (mount / "cam").glob("*.mp4"))
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
