"""SourceRecorder and RecordingService: segments, event clips, drops, idle close, SIGKILL, folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coral_inference.config.schema import RecordingConfig
from coral_inference.media.encoder import EncoderSettings
from coral_inference.media.recorder import (
    OutsideRecordingsRootError,
    RecorderOptions,
    RecordingService,
    SourceRecorder,
    resolve_inside,
    source_folder_name,
)
from tests.support import wait_until

from .frames import decode, moving_bar

FAST = EncoderSettings(preset="ultrafast", keyframe_interval_s=0.5)


def options(**kw) -> RecorderOptions:
    """Fast encoding and a queue deep enough for frames submitted in a burst."""
    return RecorderOptions(**{"encoder": FAST, "queue_frames": 1000, **kw})


def record(
    recorder: SourceRecorder, n: int, fps: float = 30, trigger=lambda i: None, start: int = 0, **kw
):
    for i in range(start, start + n):
        recorder.submit(
            moving_bar(i),
            media_time=i / fps,
            wall_time=1_800_000_000 + i / fps,
            trigger=trigger(i),
            fps=fps,
            **kw,
        )


def test_segments_rotate_on_media_time_and_are_named_by_start(tmp_path):
    rec = SourceRecorder(tmp_path / "cam", options(segment_seconds=1.0))
    record(rec, 95)
    rec.close()
    files = sorted((tmp_path / "cam").glob("segment_*.mp4"))
    assert [f.name for f in files][:2] == [
        "segment_20270115T080000.000Z.mp4",
        "segment_20270115T080001.000Z.mp4",
    ]
    decoded = [decode(f) for f in files]
    assert [d[0] for d in decoded] == [30, 30, 30, 5]
    assert decoded[0][1] == pytest.approx(29 / 30, abs=0.01) and decoded[0][2] == "h264"
    assert rec.stats.frames_written == 95 and rec.stats.frames_dropped == 0


def test_event_clip_holds_pre_roll_trigger_and_post_roll(tmp_path):
    opts = options(mode="events", pre_roll_s=1.0, post_roll_s=1.0)
    rec = SourceRecorder(tmp_path / "cam", opts)
    results = []
    for i in range(180):
        results.append(
            rec.submit(
                moving_bar(i),
                media_time=i / 30,
                wall_time=1_800_000_000 + i / 30,
                trigger=60 <= i < 75,
                fps=30,
            )
        )
    rec.close()
    clips = sorted((tmp_path / "cam").glob("event_*.mp4"))
    assert len(clips) == 1 and not list((tmp_path / "cam").glob("segment_*"))
    assert clips[0].name == "event_20270115T080002.000Z.mp4"  # named by the trigger's time
    assert results[59].file is None and results[60].file == clips[0] and results[120].file is None
    frames, duration, _, _ = decode(clips[0])
    # 1 s pre-roll (from the keyframe at or before it) + 15 triggered frames + 1 s post-roll
    assert 30 + 15 + 30 <= frames <= 30 + 15 + 30 + 15


def test_continuous_and_events_share_one_encode(tmp_path):
    opts = options(
        mode="continuous_and_events", segment_seconds=2.0, pre_roll_s=0.5, post_roll_s=0.5
    )
    rec = SourceRecorder(tmp_path / "cam", opts)
    record(rec, 120, trigger=lambda i: 70 <= i < 80)
    rec.close()
    assert sum(decode(f)[0] for f in (tmp_path / "cam").glob("segment_*.mp4")) == 120
    assert len(list((tmp_path / "cam").glob("event_*.mp4"))) == 1
    assert rec.stats.frames_written == 120


def test_a_full_queue_drops_frames_and_counts_them_without_blocking(tmp_path):
    opts = RecorderOptions(queue_frames=2, encoder=EncoderSettings(preset="medium"))
    rec = SourceRecorder(tmp_path / "cam", opts)
    for i in range(120):
        rec.submit(moving_bar(i, 1280, 720), media_time=i / 30, fps=30)
    rec.close()
    assert rec.stats.frames_dropped > 0
    assert rec.stats.frames_written + rec.stats.frames_dropped == 120
    assert decode(next((tmp_path / "cam").glob("*.mp4")))[0] == rec.stats.frames_written


def test_idle_source_gets_its_file_finished_and_a_new_one_later(tmp_path):
    rec = SourceRecorder(tmp_path / "cam", options(idle_close_s=0.3))
    record(rec, 20)
    wait_until(lambda: rec.stats.files_finished >= 1, timeout=10, message="idle file finished")
    assert rec.stats.files_finished == 1 and not rec.open_files() - {rec.current_file}
    record(rec, 10, start=20)
    rec.close()
    assert sorted(decode(f)[0] for f in (tmp_path / "cam").glob("*.mp4")) == [10, 20]


def test_sigkill_while_recording_leaves_a_playable_file(tmp_path, require_tool):
    script = Path(__file__).with_name("record_until_killed.py")
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cam")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "recording"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    (path,) = (tmp_path / "cam").glob("segment_*.mp4")
    frames, _, codec, _ = decode(path)
    assert codec == "h264" and frames >= 60  # everything up to the last finished fragment
    probe = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", str(path)], capture_output=True, text=True
    )
    assert probe.returncode == 0


def test_directories_must_stay_inside_the_recordings_root(tmp_path):
    root = tmp_path / "recordings"
    assert resolve_inside(root, "gate/cam") == (root / "gate" / "cam").resolve()
    assert resolve_inside(root, root / "x") == (root / "x").resolve()
    for bad in ("../elsewhere", "/etc", "a/../../b"):
        with pytest.raises(OutsideRecordingsRootError, match="outside the recordings root"):
            resolve_inside(root, bad)


def test_source_folder_names_are_safe_distinct_and_hide_credentials():
    names = {
        source_folder_name(s)
        for s in ("rtsp://user:secret@10.0.0.2/a", "rtsp://user:secret@10.0.0.2/b", "0", "cam_1")
    }
    assert len(names) == 4 and "0" in names and "cam_1" in names
    assert all(
        "/" not in n and ":" not in n and "secret" not in n and "user" not in n for n in names
    )


def test_service_records_one_file_set_per_source(tmp_path):
    service = RecordingService(tmp_path, RecordingConfig(segment_seconds=60, queue_frames=100))
    for source in ("cam-a", "cam-b"):
        rec = service.recorder("site", source)
        assert service.recorder("site", source) is rec
        record(rec, 10)
    with pytest.raises(OutsideRecordingsRootError):
        service.recorder("../x", "cam-a")
    service.close()
    assert sorted(p.name for p in (tmp_path / "site").iterdir()) == ["cam-a", "cam-b"]
    assert all(
        decode(next((tmp_path / "site" / s).glob("*.mp4")))[0] == 10 for s in ("cam-a", "cam-b")
    )


def test_runtime_context_owns_the_service_and_closes_recorders(tmp_path):
    import coral_inference

    context = coral_inference.init(
        {"storage": {"root": str(tmp_path), "recordings": str(tmp_path / "rec")}}
    )
    rec = context.recordings.recorder(".", "cam")
    record(rec, 15)
    coral_inference.shutdown()
    assert rec.stats.files_finished == 1
    assert decode(next((tmp_path / "rec" / "cam").glob("*.mp4")))[0] == 15
