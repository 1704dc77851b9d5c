"""/api/v1/streams, /api/v1/cameras, /api/v1/recordings: live channels, snapshots, recorded video."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import FileResponse

from coral_inference.pipelines.sources_policy import SourceRefusedError
from coral_inference.webapp.deps import stream_service
from coral_inference.webapp.errors import InvalidInputError
from coral_inference.webapp.schemas import Channel, Recording, SessionDescription
from coral_inference.webapp.services import StreamService

router = APIRouter()
JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "A JPEG frame."}
}
NO_STORE = {"Cache-Control": "no-store"}


@router.get(
    "/streams", response_model=list[Channel], tags=["streams"], summary="Live preview channels"
)
async def list_channels(streams: StreamService = Depends(stream_service)) -> list[dict[str, Any]]:
    return streams.channels()


@router.post(
    "/streams/{channel}/webrtc",
    response_model=SessionDescription,
    tags=["streams"],
    summary="Watch a channel over WebRTC",
)
async def channel_webrtc(
    offer: SessionDescription,
    channel: str = Path(..., min_length=1, max_length=200),
    streams: StreamService = Depends(stream_service),
) -> dict[str, str]:
    """Channels are pipeline ids and the names given to coral/webrtc_preview@v1 blocks."""
    return await streams.answer(channel, offer.sdp, offer.type)


@router.get(
    "/streams/{channel}/snapshot.jpg",
    response_class=Response,
    responses=JPEG,
    tags=["streams"],
    summary="Latest frame of a channel",
)
async def channel_snapshot(
    channel: str, streams: StreamService = Depends(stream_service)
) -> Response:
    return Response(streams.channel_snapshot(channel), media_type="image/jpeg", headers=NO_STORE)


@router.get(
    "/cameras/{index}/snapshot.jpg",
    response_class=Response,
    responses=JPEG,
    tags=["streams"],
    summary="One frame from a local camera",
)
async def camera_snapshot(
    request: Request, index: int, streams: StreamService = Depends(stream_service)
) -> Response:
    """Only cameras listed in services.pipelines.devices are opened."""
    try:
        request.app.state.source_policy.check_camera(index)
    except SourceRefusedError as exc:
        raise InvalidInputError(str(exc), code=exc.code) from None
    return Response(await streams.camera_snapshot(index), media_type="image/jpeg", headers=NO_STORE)


@router.get(
    "/recordings",
    response_model=list[Recording],
    tags=["recordings"],
    summary="Recordings, newest first",
)
async def list_recordings(streams: StreamService = Depends(stream_service)) -> list[dict[str, Any]]:
    return await asyncio.to_thread(streams.list_recordings)  # probes durations with PyAV


@router.get(
    "/recordings/{path:path}",
    response_class=FileResponse,
    tags=["recordings"],
    summary="Play or download a recording (HTTP Range supported)",
    responses={
        200: {"content": {"video/mp4": {}}},
        206: {"description": "Partial content (Range)"},
    },
)
async def get_recording(
    path: str, streams: StreamService = Depends(stream_service)
) -> FileResponse:
    return FileResponse(
        streams.recording_path(path), media_type="video/mp4", content_disposition_type="inline"
    )
