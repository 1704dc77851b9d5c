"""Live preview of stream-manager pipelines: the worker's frames, the server's WebRTC answer.

A ``coral/webrtc_preview@v1`` step publishes into its process's stream hub; in a
stream-manager worker nobody can reach that process, so the step also hands each
frame to :class:`WorkerPreview`: one shared-memory latest-frame slot per channel
(``coral_inference.media.frame_slot.FrameSlot``, the same handover Coral's own
workers use) announced by a small JSON file in ``$CORAL_PREVIEW_DIR``. The server
process (routes mounted by ``coral-runtime server start``) attaches to the slot
when a viewer asks for the channel, relays its frames into its own stream hub and
answers the viewer's WebRTC offer:

* ``GET /coral/preview`` — the live channels (``pipeline``, ``channel``);
* ``POST /coral/preview/{channel}/offer`` ``{"sdp": …, "type": "offer"}`` — the answer;
* ``GET /coral/preview/{channel}`` — a page that plays the channel in a browser.

A worker removes its slots and announcements at shutdown; announcements of
processes that no longer exist are ignored.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from coral_inference.media.frame_slot import FrameSlot
from coral_inference.runtime.context import ContextKey, RuntimeContext
from coral_inference.runtime.process import current_pipeline_identity, safe_key
from coral_inference.server.plugin import load_server_config

if TYPE_CHECKING:
    from coral_inference.media.webrtc import StreamHub

logger = logging.getLogger("coral_inference.server.preview")

PREVIEW_DIR_ENV = "CORAL_PREVIEW_DIR"
PREVIEW: ContextKey[WorkerPreview] = ContextKey("coral.server.preview_export")
MIN_CAPACITY = 1280 * 720 * 3
RELAY_FPS = 30.0


def preview_dir() -> Path | None:
    value = os.environ.get(PREVIEW_DIR_ENV)
    return Path(value) if value else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerPreview:
    """A worker's side: one shared-memory slot per channel, announced in the preview directory."""

    def __init__(self, directory: Path, pipeline: str):
        self.directory = directory
        self.pipeline = pipeline
        self._slots: dict[str, tuple[FrameSlot, Path]] = {}
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def publish(self, channel: str, frame: np.ndarray) -> None:
        with self._lock:
            entry = self._slots.get(channel)
            if entry is None:
                slot = FrameSlot.create(max(MIN_CAPACITY, frame.nbytes))
                announcement = self.directory / f"{safe_key(channel)}.json"
                temporary = announcement.with_name(f".{announcement.name}.tmp")
                temporary.write_text(
                    json.dumps(
                        {
                            "channel": channel,
                            "pipeline": self.pipeline,
                            "shm": slot.name,
                            "pid": os.getpid(),
                        }
                    )
                )
                os.replace(temporary, announcement)
                entry = self._slots[channel] = (slot, announcement)
        entry[0].write(frame)

    def channels(self) -> dict[str, str]:
        """Channel -> shared-memory name of its slot (Coral's own workers announce these)."""
        with self._lock:
            return {channel: slot.name for channel, (slot, _) in self._slots.items()}

    def close(self) -> None:
        with self._lock:
            for slot, announcement in self._slots.values():
                with contextlib.suppress(FileNotFoundError):
                    announcement.unlink()
                slot.close()
            self._slots.clear()


def publish_to_server(context: RuntimeContext, channel: str, frame: np.ndarray) -> None:
    """Called by the preview block: hand the frame to the server process when there is one."""
    directory = preview_dir()
    identity = current_pipeline_identity()
    if directory is None or identity is None:
        return
    try:
        export = context.shared(PREVIEW, lambda: WorkerPreview(directory, identity.pipeline_id))
        export.publish(channel, frame)
    except Exception as exc:  # noqa: BLE001 - the preview never stops a pipeline
        logger.debug("preview %s not handed over: %s", channel, exc)


def live_channels(directory: Path) -> dict[str, dict[str, Any]]:
    """Channel -> announcement, for announcements of live processes."""
    channels: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return channels
    for path in sorted(directory.glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and _alive(int(entry.get("pid", 0))):
            channels[str(entry["channel"])] = entry
    return channels


class PreviewRelay:
    """The server's side: copies announced slots' new frames into its stream hub."""

    def __init__(self, directory: Path, hub: StreamHub):
        self.directory = directory
        self.hub = hub
        self._attached: dict[str, tuple[str, FrameSlot, int]] = {}
        self._wanted: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def want(self, channel: str) -> bool:
        """Start relaying ``channel``; False when no live worker announces it."""
        entry = live_channels(self.directory).get(channel)
        if entry is None:
            return False
        with self._lock:
            current = self._attached.get(channel)
            if current is None or current[0] != entry["shm"]:
                if current is not None:
                    current[1].close()
                try:
                    slot = FrameSlot.attach(entry["shm"])
                except FileNotFoundError:  # the pipeline is ending: its slot is gone
                    self._attached.pop(channel, None)
                    return False
                self._attached[channel] = (entry["shm"], slot, -1)
            self._wanted[channel] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="coral-preview-relay", daemon=True
                )
                self._thread.start()
        self._copy(channel)
        return True

    def _copy(self, channel: str) -> None:
        with self._lock:
            attached = self._attached.get(channel)
            if attached is None:
                return
            name, slot, last_seq = attached
            got = slot.read()
            if got is None or got[1].seq == last_seq:
                return
            self._attached[channel] = (name, slot, got[1].seq)
        self.hub.publish(channel, got[0])

    def _run(self) -> None:
        while not self._stop.wait(1.0 / RELAY_FPS):
            viewed = {item["name"] for item in self.hub.channels() if item.get("viewers")}
            for channel in list(self._attached):
                if channel in viewed or time.monotonic() - self._wanted.get(channel, 0.0) < 30:
                    try:
                        self._copy(channel)
                    except Exception as exc:  # noqa: BLE001 - a vanished worker: detach
                        logger.debug("preview relay %s: %s", channel, exc)
                        self._detach(channel)
                elif channel not in live_channels(self.directory):
                    self._detach(channel)

    def _detach(self, channel: str) -> None:
        with self._lock:
            attached = self._attached.pop(channel, None)
        if attached is not None:
            attached[1].close()

    def close(self) -> None:
        self._stop.set()
        for channel in list(self._attached):
            self._detach(channel)


VIEWER_PAGE = """<!doctype html><meta charset="utf-8"><title>Coral preview: {channel}</title>
<style>
body{{margin:0;background:#111;color:#ddd;font:14px sans-serif}}
video{{width:100%;max-height:95vh}}
</style>
<p>Coral live preview — channel <b>{channel}</b> <span id="state"></span></p>
<video id="v" autoplay playsinline muted></video>
<script>
(async () => {{
  const state = document.getElementById("state");
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {{direction: "recvonly"}});
  pc.ontrack = (e) => {{
    document.getElementById("v").srcObject = e.streams[0] || new MediaStream([e.track]);
  }};
  pc.onconnectionstatechange = () => {{ state.textContent = pc.connectionState; }};
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => {{
    if (pc.iceGatheringState === "complete") r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
  }});
  const reply = await fetch(location.pathname.replace(/\\/$/, "") + "/offer", {{
    method: "POST", headers: {{"content-type": "application/json"}},
    body: JSON.stringify({{sdp: pc.localDescription.sdp, type: "offer"}})}});
  if (!reply.ok) {{ state.textContent = (await reply.json()).message; return; }}
  await pc.setRemoteDescription(await reply.json());
}})();
</script>
"""

_relay_lock = threading.Lock()
_relay: PreviewRelay | None = None


def server_relay() -> PreviewRelay | None:
    """The server process's relay (and its stream hub), created on the first viewer."""
    global _relay
    directory = preview_dir()
    if directory is None:
        return None
    with _relay_lock:
        if _relay is None:
            # heavy: media.webrtc loads aiortc, av, cryptography (~1 s)
            from coral_inference.media.webrtc import StreamHub

            try:
                hub = StreamHub.from_config(load_server_config().descriptor.services.streams)
            except Exception:  # noqa: BLE001 - a bad config must not take the preview down
                hub = StreamHub()
            _relay = PreviewRelay(directory, hub)
        return _relay


class Offer(BaseModel):
    sdp: str
    type: str = "offer"


def list_channels() -> list[dict[str, Any]]:
    directory = preview_dir()
    live = live_channels(directory) if directory is not None else {}
    return [{"channel": c, "pipeline": e.get("pipeline")} for c, e in sorted(live.items())]


def viewer_page(channel: str) -> Any:

    from fastapi.responses import HTMLResponse  # heavy: FastAPI/starlette (~0.6 s)

    return HTMLResponse(VIEWER_PAGE.format(channel=html.escape(channel)))


async def answer_offer(channel: str, body: Offer) -> Any:
    # heavy: FastAPI/starlette (~0.6 s) and media.webrtc (aiortc, av, cryptography: ~1 s)
    from fastapi.responses import JSONResponse

    from coral_inference.media.webrtc import InvalidOfferError, PeerLimitError, StreamError

    relay = server_relay()
    if relay is None or not relay.want(channel):
        live = sorted(live_channels(relay.directory)) if relay is not None else []
        return JSONResponse(
            status_code=404,
            content={
                "message": f"no running pipeline publishes preview channel {channel!r}; "
                f"live channels: {live}",
            },
        )
    try:
        return await relay.hub.answer(channel, body.sdp, body.type)
    except InvalidOfferError as exc:
        return JSONResponse(status_code=400, content={"message": str(exc)})
    except PeerLimitError as exc:
        return JSONResponse(status_code=429, content={"message": str(exc)})
    except StreamError as exc:
        return JSONResponse(status_code=503, content={"message": str(exc)})


def add_preview_routes(app: Any) -> None:
    """The preview routes on a FastAPI app (the launcher moves them before the static mount)."""
    # heavy: FastAPI/starlette (~0.6 s), only for the app that mounts these routes
    from fastapi.responses import HTMLResponse

    app.add_api_route(
        "/coral/preview",
        list_channels,
        methods=["GET"],
        tags=["coral"],
        summary="Live preview channels of this server's Coral pipelines",
    )
    app.add_api_route(
        "/coral/preview/{channel}",
        viewer_page,
        methods=["GET"],
        tags=["coral"],
        response_class=HTMLResponse,
        summary="Watch a channel in the browser",
    )
    app.add_api_route(
        "/coral/preview/{channel}/offer",
        answer_offer,
        methods=["POST"],
        tags=["coral"],
        summary="Answer a viewer's WebRTC offer for a channel",
    )
