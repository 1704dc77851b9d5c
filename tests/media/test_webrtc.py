"""StreamHub: viewers see the latest frame, bounded peers, bad offers, vanished viewers, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from coral_inference.media.webrtc import (
    InvalidOfferError,
    PeerLimitError,
    StreamHub,
    StreamHubClosedError,
)
from tests.support import wait_until

from .frames import moving_bar
from .webrtc_client import receive

VIEWER = Path(__file__).with_name("webrtc_client.py")


@pytest.fixture
def loopback_ice(monkeypatch):
    """aioice never offers 127.0.0.1; the test's own viewers use it (the hub gets host_addresses)."""
    import aioice.ice

    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    )


@pytest.fixture
def hub(loopback_ice):
    hub = StreamHub(
        host_addresses=["127.0.0.1"], max_peers=4, peer_timeout_s=2.0, offer_timeout_s=10
    )
    yield hub
    hub.close()


class Publisher:
    """Publishes a moving green bar to a channel at about 30 fps until stopped."""

    def __init__(self, hub: StreamHub, channel: str):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(hub, channel), daemon=True)

    def _run(self, hub, channel):
        i = 0
        while not self.stop.is_set():
            hub.publish(channel, moving_bar(i))
            i += 1
            time.sleep(1 / 30)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_every_viewer_gets_the_latest_frames_without_stealing(hub):
    async def two_viewers():
        return await asyncio.gather(
            receive(lambda sdp: hub.answer("cam", sdp), 20),
            receive(lambda sdp: hub.answer("cam", sdp), 20),
        )

    with Publisher(hub, "cam"):
        first, second = asyncio.run(two_viewers())
    for frames in (first, second):
        assert len(frames) == 20 and frames[-1].shape == (240, 320, 3)
        green = frames[-1][:, :, 1] > 200
        assert green.any() and green.mean() < 0.2  # the bar, not a placeholder or a blank frame
    info = {c["name"]: c for c in hub.channels()}["cam"]
    assert info["frames"] > 20 and info["width"] == 320


def test_idle_channel_shows_a_placeholder(hub):
    frames = asyncio.run(receive(lambda sdp: hub.answer("nobody-publishes", sdp), 2))
    assert frames[-1].shape == (360, 640, 3)
    assert 25 < frames[-1].mean() < 60  # dark grey with text


def test_peers_are_bounded(loopback_ice):
    hub = StreamHub(host_addresses=["127.0.0.1"], max_peers=1)

    async def scenario():
        from .webrtc_client import connect

        pc, _ = await connect(lambda sdp: hub.answer("cam", sdp))
        with pytest.raises(PeerLimitError, match="max_peers=1"):
            await connect(lambda sdp: hub.answer("cam", sdp))
        assert hub.peer_count == 1
        await pc.close()

    try:
        asyncio.run(scenario())
    finally:
        hub.close()
    assert hub.peer_count == 0


@pytest.mark.parametrize(
    ("sdp", "kind", "fragment"),
    [
        ("hello", "offer", "not SDP"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "offer", "no video media section"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "offer", "cannot answer this offer"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "answer", "expected an SDP of type 'offer'"),
    ],
)
def test_invalid_offers_are_refused_clearly(hub, sdp, kind, fragment):
    with pytest.raises(InvalidOfferError, match=fragment):
        hub.offer("cam", sdp, type=kind)
    assert hub.peer_count == 0


def test_publish_refuses_what_is_not_a_bgr_frame(hub):
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        hub.publish("cam", np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="non-empty string"):
        hub.publish("", moving_bar(0))


@pytest.mark.slow
def test_a_viewer_that_vanishes_is_cleaned_up(hub):
    viewer = subprocess.Popen(
        [sys.executable, str(VIEWER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(VIEWER.parent),
    )
    try:
        with Publisher(hub, "cam"):
            offer = json.loads(viewer.stdout.readline())
            answer = hub.offer("cam", offer["sdp"])
            viewer.stdin.write(json.dumps({"sdp": answer["sdp"], "type": answer["type"]}) + "\n")
            viewer.stdin.flush()
            assert viewer.stdout.readline().strip() == "receiving"
            assert hub.peer_count == 1 and hub.channels()[0]["viewers"] == 1
            os.kill(viewer.pid, signal.SIGKILL)  # no goodbye: no DTLS close, no RTCP BYE
            wait_until(
                lambda: hub.peer_count == 0, timeout=30, interval=0.2, message="dead viewer dropped"
            )
    finally:
        viewer.kill()
        viewer.wait(10)
    assert hub.peer_count == 0 and hub.peers_closed == 1


def test_close_stops_the_loop_thread_and_refuses_offers(loopback_ice):
    hub = StreamHub(host_addresses=["127.0.0.1"])
    asyncio.run(receive(lambda sdp: hub.answer("cam", sdp), 1))
    assert any(t.name == "coral-webrtc" for t in threading.enumerate())
    hub.close()
    assert not any(t.name == "coral-webrtc" for t in threading.enumerate())
    with pytest.raises(StreamHubClosedError):
        hub.offer("cam", "v=0")


def test_context_hub_follows_the_streams_config_and_closes_at_shutdown(loopback_ice):
    import coral_inference

    context = coral_inference.init(
        {
            "services": {
                "streams": {
                    "max_peers": 3,
                    "host_addresses": ["127.0.0.1"],
                    "ice_servers": [{"urls": ["stun:stun.example.org:3478"]}],
                }
            }
        }
    )
    hub = context.streams
    assert context.streams is hub
    assert hub.max_peers == 3 and hub.host_addresses == ("127.0.0.1",)
    assert hub.ice_servers[0].urls == ["stun:stun.example.org:3478"]
    coral_inference.shutdown()
    with pytest.raises(StreamHubClosedError):
        hub.offer("cam", "v=0")
