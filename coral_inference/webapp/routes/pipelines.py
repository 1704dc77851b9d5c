"""/api/v1/pipelines: start, list, inspect, control, preview and delete pipelines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response, status

from coral_inference.webapp.deps import pipeline_service, stream_service
from coral_inference.webapp.schemas import PipelineResults, PipelineStatus, SessionDescription
from coral_inference.webapp.services import PipelineService, PipelineSpec, StreamService
from coral_inference.webapp.services.streams import encode_jpeg

router = APIRouter(prefix="/pipelines", tags=["pipelines"])
JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "The latest preview frame as JPEG."}
}


@router.get("", response_model=list[PipelineStatus], summary="List pipelines")
async def list_pipelines(
    service: PipelineService = Depends(pipeline_service),
) -> list[dict[str, Any]]:
    return await service.list()


@router.post(
    "",
    response_model=PipelineStatus,
    status_code=status.HTTP_201_CREATED,
    summary="Start a pipeline",
)
async def create_pipeline(
    spec: PipelineSpec, service: PipelineService = Depends(pipeline_service)
) -> dict[str, Any]:
    """Compile the workflow and start it on the source; the pipeline is persisted and comes back after a restart."""
    return await service.create(spec)


@router.get("/{pipeline_id}", response_model=PipelineStatus, summary="Status of a pipeline")
async def get_pipeline(
    pipeline_id: str, service: PipelineService = Depends(pipeline_service)
) -> dict[str, Any]:
    return await service.get(pipeline_id)


@router.post("/{pipeline_id}/pause", response_model=PipelineStatus, summary="Pause a pipeline")
async def pause_pipeline(
    pipeline_id: str, service: PipelineService = Depends(pipeline_service)
) -> dict[str, Any]:
    return await service.pause(pipeline_id)


@router.post(
    "/{pipeline_id}/resume", response_model=PipelineStatus, summary="Resume a paused pipeline"
)
async def resume_pipeline(
    pipeline_id: str, service: PipelineService = Depends(pipeline_service)
) -> dict[str, Any]:
    return await service.resume(pipeline_id)


@router.post(
    "/{pipeline_id}/terminate",
    response_model=PipelineStatus,
    summary="Stop a pipeline (kept in the list)",
)
async def terminate_pipeline(
    pipeline_id: str, service: PipelineService = Depends(pipeline_service)
) -> dict[str, Any]:
    return await service.terminate(pipeline_id)


@router.delete(
    "/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Stop and forget a pipeline"
)
async def delete_pipeline(
    pipeline_id: str, service: PipelineService = Depends(pipeline_service)
) -> Response:
    await service.delete(pipeline_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{pipeline_id}/results", response_model=PipelineResults, summary="Latest workflow outputs"
)
async def pipeline_results(
    pipeline_id: str, service: PipelineService = Depends(pipeline_service)
) -> dict[str, Any]:
    return await service.results(pipeline_id)


@router.get(
    "/{pipeline_id}/snapshot.jpg",
    response_class=Response,
    responses=JPEG,
    summary="Latest preview frame",
)
async def pipeline_snapshot(
    pipeline_id: str, service: PipelineService = Depends(pipeline_service)
) -> Response:
    frame = await service.latest_image(pipeline_id)  # 404 for an unknown pipeline
    return Response(
        encode_jpeg(frame), media_type="image/jpeg", headers={"Cache-Control": "no-store"}
    )


@router.post(
    "/{pipeline_id}/webrtc",
    response_model=SessionDescription,
    summary="Watch a pipeline over WebRTC",
)
async def pipeline_webrtc(
    pipeline_id: str,
    offer: SessionDescription,
    service: PipelineService = Depends(pipeline_service),
    streams: StreamService = Depends(stream_service),
) -> dict[str, str]:
    """Send the browser's SDP offer; the answer's video track carries the pipeline's preview image."""
    await service.get(pipeline_id)  # 404 for an unknown pipeline
    return await streams.answer(pipeline_id, offer.sdp, offer.type)
