"""Encoder and fragmented MP4: one encode, browser-playable files, codec fallback."""

from __future__ import annotations

import subprocess

import av
import pytest

from coral_inference.media import encoder as encoder_module
from coral_inference.media.encoder import (
    EncoderSettings,
    EncoderUnavailableError,
    Mp4File,
    PacketEncoder,
)

from .frames import decode, moving_bar


def test_one_encode_feeds_two_files_that_both_decode(tmp_path):
    enc = PacketEncoder(EncoderSettings(keyframe_interval_s=0.5), 320, 240, fps=30)
    a, b, b_start = Mp4File(tmp_path / "a.mp4", enc), None, None
    for i in range(60):
        for packet in enc.encode(moving_bar(i), i / 30):
            if b is None and packet.keyframe and packet.seconds >= 1.0:
                b, b_start = Mp4File(tmp_path / "b.mp4", enc), round(packet.seconds * 30)
            for target in (a, b):
                if target is not None:
                    target.write(packet)
    for packet in enc.flush():
        a.write(packet)
        b.write(packet)
    a.close()
    b.close()
    assert decode(tmp_path / "a.mp4")[:1] == (60,)
    frames, duration, codec, pix_fmt = decode(tmp_path / "b.mp4")
    assert (frames, codec, pix_fmt) == (
        60 - b_start,
        "h264",
        "yuv420p",
    )  # from its first keyframe on
    assert duration == pytest.approx((59 - b_start) / 30, abs=0.01)


def test_files_are_fragmented_mp4_without_b_frames(tmp_path, require_tool):
    enc = PacketEncoder(EncoderSettings(), 320, 240, fps=30)
    mp4 = Mp4File(tmp_path / "f.mp4", enc)
    for i in range(45):
        for packet in enc.encode(moving_bar(i), i / 30):
            mp4.write(packet)
    for packet in enc.flush():
        mp4.write(packet)
    mp4.close()
    probe = subprocess.run(
        [
            require_tool("ffprobe"),
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,pix_fmt,has_b_frames,nb_read_frames",
            "-count_frames",
            "-of",
            "default=nw=1",
            str(tmp_path / "f.mp4"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "codec_name=h264" in probe and "pix_fmt=yuv420p" in probe
    assert "has_b_frames=0" in probe and "nb_read_frames=45" in probe
    data = (tmp_path / "f.mp4").read_bytes()
    assert b"moof" in data and b"mvex" in data  # fragments, not one moov at the end


def test_odd_frame_sizes_are_made_even_for_yuv420p(tmp_path):
    enc = PacketEncoder(EncoderSettings(), 321, 239, fps=30)
    assert (enc.width, enc.height) == (320, 238)
    enc.flush()


def test_falls_back_to_mpeg4_when_libx264_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(
        encoder_module.av, "codecs_available", set(av.codecs_available) - {"libx264"}
    )
    enc = PacketEncoder(EncoderSettings(codec="h264"), 320, 240, fps=30)
    assert enc.codec == "mpeg4"
    mp4 = Mp4File(tmp_path / "m.mp4", enc)
    for i in range(10):
        for packet in enc.encode(moving_bar(i), i / 30):
            mp4.write(packet)
    for packet in enc.flush():
        mp4.write(packet)
    mp4.close()
    assert decode(tmp_path / "m.mp4")[0] == 10


def test_no_encoder_at_all_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(encoder_module.av, "codecs_available", set())
    with pytest.raises(EncoderUnavailableError, match="install the PyAV wheel"):
        PacketEncoder(EncoderSettings(), 320, 240, fps=30)
