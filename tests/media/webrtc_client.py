"""An aiortc viewer for tests: offer a receive-only video transceiver, take the hub's answer.

Run as a script it is a viewer in another process: it prints its offer as one
JSON line, reads the answer as one JSON line, prints "receiving" once frames
arrive and keeps receiving until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription


async def connect(
    answer: Callable[[str], Awaitable[dict]],
) -> tuple[RTCPeerConnection, asyncio.Future]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    track_future: asyncio.Future = asyncio.get_running_loop().create_future()
    pc.on("track", lambda track: track_future.done() or track_future.set_result(track))
    await pc.setLocalDescription(await pc.createOffer())
    reply = await answer(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type=reply["type"]))
    return pc, track_future


async def receive(answer: Callable[[str], Awaitable[dict]], n: int, timeout: float = 20.0):
    """Connect, receive ``n`` frames as BGR arrays, close."""
    pc, track_future = await connect(answer)
    try:
        track = await asyncio.wait_for(track_future, timeout)
        return [
            (await asyncio.wait_for(track.recv(), timeout)).to_ndarray(format="bgr24")
            for _ in range(n)
        ]
    finally:
        await pc.close()


async def _viewer_process() -> None:
    loop = asyncio.get_running_loop()

    async def answer(sdp: str) -> dict:
        print(json.dumps({"sdp": sdp, "type": "offer"}), flush=True)
        return json.loads(await loop.run_in_executor(None, sys.stdin.readline))

    pc, track_future = await connect(answer)
    track = await asyncio.wait_for(track_future, 20)
    await track.recv()
    print("receiving", flush=True)
    while True:
        await track.recv()


if __name__ == "__main__":
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    asyncio.run(_viewer_process())
