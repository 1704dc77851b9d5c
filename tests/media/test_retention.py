"""Retention: the pure policy, enforcement on a folder, and a folder kept under quota while recording."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from coral_inference.config.schema import RecordingConfig, RetentionConfig
from coral_inference.media.encoder import EncoderSettings
from coral_inference.media.recorder import RecorderOptions, RecordingService
from coral_inference.media.retention import RecordingFile, RetentionPolicy, enforce

from .frames import moving_bar


def files(*specs: tuple[str, int, float]) -> list[RecordingFile]:
    return [RecordingFile(Path(name), size, mtime) for name, size, mtime in specs]


def names(selected: list[RecordingFile]) -> list[str]:
    return [f.path.name for f in selected]


def test_age_limit_deletes_only_old_files():
    policy = RetentionPolicy(max_age_s=100)
    chosen = policy.select(
        files(("a", 1, 0), ("b", 1, 50), ("c", 1, 950)), now=1000, free_bytes=None
    )
    assert names(chosen) == ["a", "b"]


def test_size_limit_deletes_oldest_first_until_under_quota():
    policy = RetentionPolicy(max_bytes=250)
    chosen = policy.select(
        files(("c", 100, 3), ("a", 100, 1), ("b", 100, 2)), now=10, free_bytes=None
    )
    assert names(chosen) == ["a"]


def test_free_space_limit_counts_what_deleting_frees():
    policy = RetentionPolicy(min_free_bytes=1000)
    chosen = policy.select(
        files(("a", 300, 1), ("b", 300, 2), ("c", 300, 3)), now=10, free_bytes=500
    )
    assert names(chosen) == ["a", "b"]


def test_the_file_being_written_is_never_selected():
    policy = RetentionPolicy(max_bytes=0, max_age_s=1)
    chosen = policy.select(
        files(("a", 10, 1), ("live", 10, 2)), now=100, free_bytes=None, protected=[Path("live")]
    )
    assert names(chosen) == ["a"]


def test_no_limits_delete_nothing():
    assert RetentionPolicy().select(files(("a", 10**12, 0)), now=1e9, free_bytes=0) == []
    assert not RetentionPolicy().active


def test_policy_from_config_converts_hours_and_gigabytes():
    policy = RetentionPolicy.from_config(
        RetentionConfig(max_age_hours=2, max_gb=1.5, min_free_gb=None), max_gb=3
    )
    assert policy == RetentionPolicy(max_age_s=7200, max_bytes=3 * 1024**3, min_free_bytes=None)


def test_enforce_removes_files_on_disk(tmp_path):
    for i, name in enumerate(("old.mp4", "new.mp4")):
        (tmp_path / "cam").mkdir(exist_ok=True)
        path = tmp_path / "cam" / name
        path.write_bytes(b"x" * 100)
        os.utime(path, (1000 + i * 1000, 1000 + i * 1000))
    (tmp_path / "notes.txt").write_text("not a recording")
    report = enforce(tmp_path, RetentionPolicy(max_age_s=500), now=2100)
    assert [p.name for p in report.deleted] == ["old.mp4"] and report.freed_bytes == 100
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["new.mp4", "notes.txt"]


def test_a_symlink_loop_named_mp4_neither_stops_retention_nor_is_deleted(tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    old = cam / "old.mp4"
    old.write_bytes(b"x" * 100)
    os.utime(old, (1000, 1000))
    (cam / "loop-a.mp4").symlink_to(cam / "loop-b.mp4")
    (cam / "loop-b.mp4").symlink_to(cam / "loop-a.mp4")
    (cam / "elsewhere.mp4").symlink_to(old)  # a link is never followed to its target's age
    report = enforce(
        tmp_path, RetentionPolicy(max_age_s=500), protected=[cam / "loop-a.mp4"], now=2100
    )
    assert report.errors == [] and [p.name for p in report.deleted] == ["old.mp4"]
    assert sorted(p.name for p in cam.iterdir()) == ["elsewhere.mp4", "loop-a.mp4", "loop-b.mp4"]


@pytest.mark.slow
def test_folder_stays_under_quota_while_recording_continues(tmp_path):
    quota = 4_000_000  # about three and a half segments of noise
    config = RecordingConfig(
        segment_seconds=0.5,
        queue_frames=1000,
        retention=RetentionConfig(max_gb=quota / 1024**3, interval_s=0.1),
    )
    service = RecordingService(tmp_path, config)
    options = RecorderOptions(
        segment_seconds=0.5, queue_frames=1000, encoder=EncoderSettings(preset="ultrafast", crf=10)
    )
    rec = service.recorder("yard", "cam", options, RetentionPolicy(max_bytes=quota))
    folder = tmp_path / "yard"
    over_quota_seen = []
    for i in range(300):  # 10 s of noisy video in 0.5 s segments, paced so retention runs meanwhile
        rec.submit(moving_bar(i, noise=True), media_time=i / 30, fps=30)
        if i % 15 == 0:
            time.sleep(0.05)
            live = rec.open_files()
            finished = sum(
                p.stat().st_size for p in folder.rglob("*.mp4") if p not in live and p.exists()
            )
            over_quota_seen.append(finished > quota * 2)
    rec.close()
    service.retention.run_once()
    total = sum(p.stat().st_size for p in folder.rglob("*.mp4"))
    assert service.retention.deleted_files > 0
    assert total <= quota
    assert not any(over_quota_seen[5:])  # never far above quota once retention got going
    assert rec.stats.last_error is None  # the file being written was never pulled away
    service.close()
