"""Frames and file checks shared by the media tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def moving_bar(i: int, width: int = 320, height: int = 240, noise: bool = False) -> np.ndarray:
    """Frame ``i``: a bar moving right; optional noise makes files large (retention tests)."""
    if noise:
        frame = np.random.default_rng(i).integers(0, 255, (height, width, 3), dtype=np.uint8)
    else:
        frame = np.zeros((height, width, 3), dtype=np.uint8)
    x = (i * 4) % (width - 20)
    frame[:, x : x + 20] = (0, 255, 0)
    return frame


def decode(path: Path) -> tuple[int, float, str, str]:
    """(frames, duration seconds, codec, pixel format) of an MP4, read with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
    if not frames:
        return 0, 0.0, codec, pix_fmt
    duration = float((frames[-1].pts - frames[0].pts) * frames[0].time_base)
    return len(frames), duration, codec, pix_fmt
