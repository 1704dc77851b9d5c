"""Live preview over WebRTC: named channels, many viewers each seeing the latest frame.

Pipelines ``publish`` frames into channels from their own threads (a lock and
an assignment: never blocks). Each viewer gets its own ``ChannelTrack`` that
reads the channel's *latest* frame, so viewers never take frames from each
other and a slow viewer only skips frames. aiortc runs on the hub's own asyncio
loop thread; ``answer`` (async, any loop) and ``offer`` (sync) turn a viewer's
SDP offer into an answer within ``offer_timeout_s``. Peers are bounded
(``max_peers``), closed when their connection fails or closes, and closed by a
watchdog when the viewer stops sending RTCP receiver reports for
``peer_timeout_s`` (a viewer that vanished without saying goodbye). A channel
without a recent frame shows a placeholder.

ICE: servers come from config (none by default, so nothing leaves the LAN);
``host_addresses`` pins the host candidates aioice offers (it never offers
127.0.0.1 on its own, which a same-machine viewer needs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any, cast

import aioice.ice
import av
import cv2
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from coral_inference.config.schema import StreamsConfig

logger = logging.getLogger("coral_inference.media.webrtc")

VIDEO_TIME_BASE = Fraction(1, 90_000)
PLACEHOLDER_SIZE = (360, 640)
MAX_MEDIA_SECTIONS = 8
MAX_ANSWER_CHARS = 100_000  # the API's SessionDescription.sdp limit
_host_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "coral_webrtc_host_addresses", default=None
)


class StreamError(Exception):
    """Base of the errors a WebRTC offer can get."""


class InvalidOfferError(StreamError, ValueError):
    """The SDP is not an offer Coral can answer (names what is wrong)."""


class PeerLimitError(StreamError):
    """``services.streams.max_peers`` viewers are already connected."""


class OfferTimeoutError(StreamError, TimeoutError):
    """The answer was not ready within ``services.streams.offer_timeout_s``."""


class StreamHubClosedError(StreamError):
    """The hub was closed (runtime shut down)."""


@dataclass
class _Channel:
    name: str
    frame: np.ndarray | None = None
    version: int = 0
    frame_mono: float = 0.0
    frame_wall: float | None = None
    fps: float = 0.0
    published: int = 0


@dataclass
class _Peer:
    pc: RTCPeerConnection
    channel: str
    track: ChannelTrack
    created: float = field(default_factory=time.monotonic)
    connected: float | None = None


def placeholder_frame(channel: str, shape: tuple[int, int] = PLACEHOLDER_SIZE) -> np.ndarray:
    """A dark frame saying the channel has no live video."""
    h, w = shape
    frame = np.full((h, w, 3), 32, dtype=np.uint8)
    scale = max(0.5, w / 960)
    for i, text in enumerate((f"channel '{channel}'", "waiting for video")):
        cv2.putText(
            frame,
            text,
            (max(10, w // 20), h // 2 + i * int(40 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (200, 200, 200),
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )
    return frame


class ChannelTrack(MediaStreamTrack):
    """One viewer's video: the channel's latest frame, at most ``max_fps``, at least 1 fps."""

    kind = "video"

    def __init__(self, hub: StreamHub, channel: str, max_fps: float):
        super().__init__()
        self._hub = hub
        self._channel = channel
        self._interval = 1.0 / max_fps
        self._start: float | None = None
        self._sent_version = -1
        self._sent_at = 0.0
        self.frames_sent = 0

    async def recv(self) -> av.VideoFrame:
        while True:
            now = time.monotonic()
            wait = self._sent_at + self._interval - now
            if wait > 0:
                await asyncio.sleep(wait)
                now = time.monotonic()
            image, version = self._hub._frame_for_viewer(self._channel)
            # A new frame goes out at once; an unchanged one is repeated once a
            # second so the viewer's decoder and the RTCP reports keep going.
            if version != self._sent_version or now - self._sent_at >= 1.0:
                break
            await asyncio.sleep(self._interval / 2)
        if self._start is None:
            self._start = now
        self._sent_version, self._sent_at = version, now
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = int((now - self._start) / VIDEO_TIME_BASE)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return frame


def _install_host_address_filter() -> None:
    """Let a context variable choose aioice's host candidates (no effect when unset)."""

    # Function attributes are set dynamically below; type as Any to allow them.
    current: Any = aioice.ice.get_host_addresses
    if getattr(current, "_coral_filter", False):
        current._coral_users += 1
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        pinned = _host_addresses.get()
        return list(pinned) if pinned else current(use_ipv4=use_ipv4, use_ipv6=use_ipv6)

    wrapper: Any = get_host_addresses
    wrapper._coral_filter = True
    wrapper._coral_users = 1
    wrapper.__wrapped__ = current
    aioice.ice.get_host_addresses = wrapper


def _uninstall_host_address_filter() -> None:

    current: Any = aioice.ice.get_host_addresses
    if getattr(current, "_coral_filter", False):
        current._coral_users -= 1
        if current._coral_users <= 0:
            aioice.ice.get_host_addresses = current.__wrapped__


class StreamHub:
    """Channels of latest frames and the WebRTC viewers watching them."""

    def __init__(
        self,
        *,
        ice_servers: Sequence[Any] = (),
        max_peers: int = 16,
        offer_timeout_s: float = 10.0,
        peer_timeout_s: float = 10.0,
        host_addresses: Sequence[str] = (),
        max_fps: float = 30.0,
        idle_after_s: float = 3.0,
    ):
        self.ice_servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            if not isinstance(s, RTCIceServer)
            else s
            for s in ice_servers
        ]
        self.max_peers = max_peers
        self.offer_timeout_s = offer_timeout_s
        self.peer_timeout_s = peer_timeout_s
        self.host_addresses = tuple(host_addresses)
        self.max_fps = max_fps
        self.idle_after_s = idle_after_s
        self._channels: dict[str, _Channel] = {}
        # Channels fed from another process's shared memory (pipeline workers), read on demand.
        self._sources: dict[str, Any] = {}
        self._source_seq: dict[str, int] = {}
        self._placeholders: dict[tuple[str, tuple[int, int]], np.ndarray] = {}
        self._lock = threading.Lock()
        self._peers: dict[str, _Peer] = {}  # touched on the hub loop only
        self._peer_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: concurrent.futures.Future[None] | None = None
        self._closed = False
        self.peers_closed = 0

    @classmethod
    def from_config(cls, streams: StreamsConfig) -> StreamHub:
        """From ``services.streams`` of the runtime configuration."""
        return cls(
            ice_servers=streams.ice_servers,
            max_peers=streams.max_peers,
            offer_timeout_s=streams.offer_timeout_s,
            peer_timeout_s=streams.peer_timeout_s,
            host_addresses=streams.host_addresses,
        )

    # ------------------------------------------------------------------ publishing (any thread)

    def publish(self, channel: str, frame_bgr: np.ndarray) -> None:
        """Make ``frame_bgr`` (H×W×3 uint8) the channel's latest frame; never blocks."""
        if not isinstance(channel, str) or not channel:
            raise ValueError(f"channel must be a non-empty string, got {channel!r}")
        if (
            not isinstance(frame_bgr, np.ndarray)
            or frame_bgr.ndim != 3
            or frame_bgr.shape[2] != 3
            or frame_bgr.dtype != np.uint8
        ):
            raise ValueError(
                f"channel {channel!r}: frames must be H×W×3 uint8 BGR arrays, got "
                f"{getattr(frame_bgr, 'shape', type(frame_bgr).__name__)} {getattr(frame_bgr, 'dtype', '')}"
            )
        now = time.monotonic()
        with self._lock:
            ch = self._channels.get(channel)
            if ch is None:
                ch = self._channels[channel] = _Channel(channel)
            if ch.published:
                dt = now - ch.frame_mono
                if dt > 0:
                    ch.fps = 1.0 / dt if ch.fps == 0 else 0.9 * ch.fps + 0.1 / dt
            ch.frame, ch.frame_mono, ch.frame_wall = frame_bgr, now, time.time()
            ch.version += 1
            ch.published += 1

    def attach_source(self, channel: str, source: Any) -> None:
        """Feed ``channel`` from ``source`` (``header()`` and ``read()``, e.g. a worker's shared-memory slot).

        Nothing is copied until a viewer or a snapshot asks for the channel's frame,
        then once per new frame, whatever the number of viewers.
        """
        with self._lock:
            self._sources[channel] = source
            self._source_seq.pop(channel, None)
            self._channels.setdefault(channel, _Channel(channel))

    def detach_source(self, channel: str) -> None:
        with self._lock:
            self._sources.pop(channel, None)
            self._source_seq.pop(channel, None)

    def _pull(self, channel: str) -> None:
        # Lock held: copy a new frame out of the channel's attached source, if it has one.
        source = self._sources.get(channel)
        if source is None:
            return
        header = source.header()
        if header is None or header.seq == 0 or self._source_seq.get(channel) == header.seq:
            return
        read = source.read()
        if read is None:
            return
        frame, header = read
        ch = self._channels.setdefault(channel, _Channel(channel))
        self._source_seq[channel] = header.seq
        age = max(0.0, time.time() - header.wall_time)
        ch.frame, ch.frame_mono, ch.frame_wall = frame, time.monotonic() - age, header.wall_time
        ch.fps, ch.published = header.fps, header.frames
        ch.version += 1

    def latest_frame(self, channel: str) -> np.ndarray | None:
        with self._lock:
            self._pull(channel)
            ch = self._channels.get(channel)
            return None if ch is None else ch.frame

    def channels(self) -> list[dict[str, Any]]:
        """Name, viewers, last frame time (UTC ISO), fps and size of every channel."""
        viewers: dict[str, int] = {}
        for peer in list(self._peers.values()):
            viewers[peer.channel] = viewers.get(peer.channel, 0) + 1
        with self._lock:
            for name in list(self._sources):
                self._pull(name)
            rows = []
            for ch in self._channels.values():
                idle = ch.frame is None or time.monotonic() - ch.frame_mono > self.idle_after_s
                rows.append(
                    {
                        "name": ch.name,
                        "viewers": viewers.get(ch.name, 0),
                        "last_frame_time": None
                        if ch.frame_wall is None
                        else datetime.fromtimestamp(ch.frame_wall, tz=timezone.utc).isoformat(),
                        "fps": 0.0 if idle else round(ch.fps, 2),
                        "frames": ch.published,
                        "width": None if ch.frame is None else int(ch.frame.shape[1]),
                        "height": None if ch.frame is None else int(ch.frame.shape[0]),
                        "live": not idle,
                    }
                )
        return rows

    @property
    def peer_count(self) -> int:
        return self._peer_count

    def _frame_for_viewer(self, channel: str) -> tuple[np.ndarray, int]:
        with self._lock:
            self._pull(channel)
            ch = self._channels.get(channel)
            if (
                ch is not None
                and ch.frame is not None
                and time.monotonic() - ch.frame_mono <= self.idle_after_s
            ):
                return ch.frame, ch.version
            shape = PLACEHOLDER_SIZE if ch is None or ch.frame is None else ch.frame.shape[:2]
            size = cast("tuple[int, int]", tuple(shape))
            key = (channel, size)
            if key not in self._placeholders:
                if len(self._placeholders) > 64:
                    self._placeholders.clear()
                self._placeholders[key] = placeholder_frame(channel, size)
            return self._placeholders[key], -1

    # ------------------------------------------------------------------ signalling

    async def answer(self, channel: str, sdp: str, type: str = "offer") -> dict[str, str]:
        """Answer a viewer's SDP offer for ``channel``; usable from any asyncio loop."""
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._answer(channel, sdp, type), loop)
        return await asyncio.wrap_future(future)

    def offer(self, channel: str, sdp: str, type: str = "offer") -> dict[str, str]:
        """Synchronous ``answer`` for threads without a loop (not from the hub's own loop)."""
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "StreamHub.offer() called from the hub's loop; await StreamHub.answer() instead"
            )
        future = asyncio.run_coroutine_threadsafe(self._answer(channel, sdp, type), loop)
        return future.result(timeout=self.offer_timeout_s + 5)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise StreamHubClosedError(
                    "the stream hub is closed (the Coral runtime was shut down)"
                )
            if self._loop is None:
                if self.host_addresses:
                    _install_host_address_filter()
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="coral-webrtc", daemon=True)
                self._thread.start()
                ready.wait(10)
                self._loop = loop
                self._watchdog = asyncio.run_coroutine_threadsafe(self._watch_peers(), loop)
            return self._loop

    async def _answer(self, channel: str, sdp: str, type: str) -> dict[str, str]:
        if not isinstance(channel, str) or not channel:
            raise InvalidOfferError(f"channel must be a non-empty string, got {channel!r}")
        if type != "offer":
            raise InvalidOfferError(f"expected an SDP of type 'offer', got {type!r}")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise InvalidOfferError(
                f"channel {channel!r}: the offer is not SDP (it must start with 'v=0')"
            )
        if "m=video" not in sdp:
            raise InvalidOfferError(
                f"channel {channel!r}: the offer has no video media section; "
                "add a receive-only video transceiver before creating the offer"
            )
        sections = sdp.count("\nm=")
        if sections > MAX_MEDIA_SECTIONS:
            # Each section costs an answer section (and ICE work): 50 of them made a >100 kB answer.
            raise InvalidOfferError(
                f"channel {channel!r}: the offer has {sections} media sections; a viewer needs one video "
                f"section (at most {MAX_MEDIA_SECTIONS} are answered)"
            )
        if len(self._peers) >= self.max_peers:
            raise PeerLimitError(
                f"{len(self._peers)} viewers already connected (services.streams.max_peers={self.max_peers})"
            )
        peer_id = uuid.uuid4().hex
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self.ice_servers)))
        track = ChannelTrack(self, channel, self.max_fps)
        peer = _Peer(pc=pc, channel=channel, track=track)
        self._peers[peer_id] = peer
        self._peer_count = len(self._peers)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            state = pc.connectionState
            if state == "connected" and peer.connected is None:
                peer.connected = time.monotonic()
            elif state in ("failed", "closed"):
                await self._drop(peer_id, f"connection {state}")

        if self.host_addresses:
            _host_addresses.set(self.host_addresses)
        try:

            async def negotiate() -> None:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                pc.addTrack(track)
                await pc.setLocalDescription(await pc.createAnswer())

            await asyncio.wait_for(negotiate(), timeout=self.offer_timeout_s)
        except asyncio.TimeoutError:
            await self._drop(peer_id, "offer timed out")
            raise OfferTimeoutError(
                f"channel {channel!r}: no answer within {self.offer_timeout_s}s (services.streams.offer_timeout_s)"
            ) from None
        except Exception as exc:
            await self._drop(peer_id, "invalid offer")
            raise InvalidOfferError(
                f"channel {channel!r}: cannot answer this offer: {type_name(exc)}: {exc}"
            ) from exc
        if len(pc.localDescription.sdp) > MAX_ANSWER_CHARS:
            await self._drop(
                peer_id, "answer too large"
            )  # its viewer slot is free at once, not in 20 s
            raise InvalidOfferError(
                f"channel {channel!r}: the answer to this offer would be {len(pc.localDescription.sdp)} characters "
                f"(at most {MAX_ANSWER_CHARS}); offer one receive-only video section"
            )
        logger.info(
            "viewer %s joined channel %r (%d peers)", peer_id[:8], channel, len(self._peers)
        )
        return {
            "sdp": pc.localDescription.sdp,
            "type": pc.localDescription.type,
            "peer_id": peer_id,
        }

    async def _drop(self, peer_id: str, reason: str) -> None:
        peer = self._peers.pop(peer_id, None)
        self._peer_count = len(self._peers)
        if peer is None:
            return
        self.peers_closed += 1
        logger.info(
            "viewer %s left channel %r: %s (%d peers)",
            peer_id[:8],
            peer.channel,
            reason,
            len(self._peers),
        )
        peer.track.stop()
        try:
            await peer.pc.close()
        except Exception as exc:  # closing a broken connection may fail; it is gone either way
            logger.debug("closing peer %s: %s", peer_id[:8], exc)

    async def _watch_peers(self) -> None:
        """Close viewers that stopped sending RTCP receiver reports or never connected."""
        while True:
            await asyncio.sleep(min(1.0, self.peer_timeout_s / 4))
            now = time.monotonic()
            for peer_id, peer in list(self._peers.items()):
                if peer.connected is None:
                    if now - peer.created > self.offer_timeout_s + self.peer_timeout_s:
                        await self._drop(peer_id, "never connected")
                    continue
                last_report = peer.connected
                for sender in peer.pc.getSenders():
                    try:
                        stats = await sender.getStats()
                    except Exception:
                        continue
                    for s in stats.values():
                        if s.type == "remote-inbound-rtp":
                            age = (datetime.now(timezone.utc) - s.timestamp).total_seconds()
                            last_report = max(last_report, now - age)
                if now - last_report > self.peer_timeout_s:
                    await self._drop(peer_id, f"no receiver report for {self.peer_timeout_s:.0f}s")

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Close every peer, stop the loop thread; publishing afterwards is ignored."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None:
            return

        async def close_all() -> None:
            if self._watchdog is not None:
                self._watchdog.cancel()
            for peer_id in list(self._peers):
                await self._drop(peer_id, "hub closed")

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=10)
            # aiortc encodes frames in the loop's default executor: stop its threads too.
            asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(
                timeout=10
            )
        except Exception as exc:
            logger.warning("closing WebRTC peers: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()
        if self.host_addresses:
            _uninstall_host_address_filter()


def type_name(exc: BaseException) -> str:
    return type(exc).__name__
