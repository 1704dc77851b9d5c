"""Encode once, write many: a video encoder whose packets go into fragmented MP4 files.

``PacketEncoder`` turns BGR frames into H.264 (libx264) packets, or MPEG-4 Part 2
when libx264 is missing. ``Mp4File`` muxes those packets, unchanged, into a
fragmented MP4 (``frag_keyframe+empty_moov+default_base_moof``): every keyframe
closes a fragment, so a killed process leaves a playable file, and a browser can
play it without a second encode (yuv420p, no B-frames). One encoder feeds both
the continuous segment and an event clip of the same source.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.frame import PictureType

logger = logging.getLogger("coral_inference.media.encoder")

TIME_BASE = Fraction(1, 90_000)
MPEG4_TIME_BASE = Fraction(1, 60_000)  # MPEG-4 Part 2 allows denominators up to 65535
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
CODEC_LIBRARIES = {"h264": "libx264", "mpeg4": "mpeg4"}


class EncoderUnavailableError(RuntimeError):
    """Neither the requested codec nor its fallback can be opened by this PyAV build."""


@dataclass(frozen=True)
class EncoderSettings:
    """How a source is encoded; ``width``/``height``/``fps`` of None come from the stream."""

    codec: str = "h264"
    preset: str = "veryfast"
    crf: int = 23
    keyframe_interval_s: float = 1.0
    threads: int = 0
    width: int | None = None
    height: int | None = None
    fps: float | None = None


def available_codec(requested: str) -> str:
    """``requested`` if this PyAV build can encode it, else the first one it can."""
    for name in (requested, *CODEC_LIBRARIES):
        if CODEC_LIBRARIES.get(name) in av.codecs_available:
            if name != requested:
                logger.warning(
                    "%s encoder unavailable, recording with %s (not browser-playable)",
                    requested,
                    name,
                )
            return name
    raise EncoderUnavailableError(
        f"this PyAV build offers none of {sorted(CODEC_LIBRARIES.values())}; install the PyAV wheel from PyPI"
    )


def _even(value: int) -> int:
    # yuv420p needs even dimensions.
    return max(2, value - value % 2)


@dataclass
class EncodedPacket:
    """A packet with its timestamp in ``time_base`` (pts == dts: there are no B-frames)."""

    packet: av.Packet
    pts: int
    keyframe: bool
    time_base: Fraction = TIME_BASE

    @property
    def seconds(self) -> float:
        return float(self.pts * self.time_base)


class PacketEncoder:
    """One encoder per source; ``encode`` returns the packets that came out."""

    def __init__(self, settings: EncoderSettings, width: int, height: int, fps: float):
        self.codec = available_codec(settings.codec)
        self.width = _even(settings.width or width)
        self.height = _even(settings.height or height)
        self.fps = float(settings.fps or fps or 30.0)
        self.time_base = TIME_BASE if self.codec == "h264" else MPEG4_TIME_BASE
        # The stream lives in a container that is never written: PyAV copies
        # output streams from a template stream, and the MP4 muxer flags make the
        # encoder put SPS/PPS in extradata (needed for the moov of each file).
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        stream = cast(
            av.VideoStream,
            self._holder.add_stream(
                CODEC_LIBRARIES[self.codec], rate=Fraction(self.fps).limit_denominator(1001)
            ),
        )
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        ctx = stream.codec_context
        ctx.time_base = self.time_base
        gop = max(1, round(self.fps * settings.keyframe_interval_s))
        options = {"g": str(gop), "bf": "0", "threads": str(settings.threads)}
        if self.codec == "h264":
            # bf=0 keeps pts == dts (simple per-file offsets, MSE-friendly); forced-idr
            # makes a requested keyframe an IDR so a new file can start on it.
            options.update(preset=settings.preset, crf=str(settings.crf), **{"forced-idr": "1"})
        else:
            # MPEG-4 Part 2 has no CRF: about 0.15 bit per pixel looks acceptable.
            ctx.bit_rate = int(self.width * self.height * self.fps * 0.15)
        ctx.options = options
        ctx.open()
        self.stream = stream
        self._last_pts = -1

    @property
    def extradata(self) -> bytes | None:
        return self.stream.codec_context.extradata

    def encode(
        self, frame_bgr: np.ndarray, seconds: float, *, keyframe: bool = False
    ) -> list[EncodedPacket]:
        """Encode one frame shown at ``seconds`` (monotonic pts are enforced)."""
        pts = max(round(seconds / self.time_base), self._last_pts + 1)
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
        frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts, frame.time_base = pts, self.time_base
        if keyframe:
            frame.pict_type = PictureType.I
        return self._wrap(self.stream.encode(frame))

    @property
    def last_pts(self) -> int:
        return self._last_pts

    def flush(self) -> list[EncodedPacket]:
        """Drain the encoder; it cannot be used afterwards."""
        try:
            return self._wrap(self.stream.encode(None))
        finally:
            self._holder.close()

    def _wrap(self, packets: list[av.Packet]) -> list[EncodedPacket]:
        out = []
        for packet in packets:
            if packet.pts is None:
                continue
            packet.time_base = self.time_base
            out.append(
                EncodedPacket(packet, int(packet.pts), bool(packet.is_keyframe), self.time_base)
            )
        return out


class Mp4File:
    """A fragmented MP4 written from a ``PacketEncoder``'s packets; starts at a keyframe."""

    def __init__(self, path: Path, encoder: PacketEncoder):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w", format="mp4", options=dict(FRAGMENTED_MP4))
        stream = self._container.add_stream_from_template(encoder.stream)
        # Opening the copied stream creates a codec context of its own; its headers
        # are replaced by the real encoder's so the moov describes our packets.
        stream.codec_context.time_base = encoder.time_base
        stream.codec_context.open()
        stream.codec_context.extradata = encoder.extradata
        self._stream = stream
        self._offset: int | None = None
        self.frames = 0
        self.first_seconds: float | None = None
        self.last_seconds: float | None = None

    def write(self, encoded: EncodedPacket) -> bool:
        """Mux one packet; packets before the first keyframe are skipped (returns False)."""
        if self._offset is None:
            if not encoded.keyframe:
                return False
            self._offset = encoded.pts
            self.first_seconds = encoded.seconds
        packet = encoded.packet
        packet.time_base = encoded.time_base
        packet.pts = packet.dts = encoded.pts - self._offset
        packet.stream = self._stream
        self._container.mux(packet)
        self.frames += 1
        self.last_seconds = encoded.seconds
        return True

    @property
    def duration_s(self) -> float:
        if self.first_seconds is None or self.last_seconds is None:
            return 0.0
        return self.last_seconds - self.first_seconds

    def close(self) -> None:
        self._container.close()
