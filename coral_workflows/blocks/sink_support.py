"""What Coral's sink blocks share: the engine's ``disable_sinks`` flag and frame metadata.

Sink blocks ask for the init parameter ``workflows_core.disable_sinks``: the
engine resolves that name from the explicit init parameters (``InferencePipeline``
and the HTTP API set it) or from the core plugin's default (False), so Coral's
sinks obey the same switch as Roboflow's own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coral_inference.runtime.process import current_pipeline_identity, pipeline_key

if TYPE_CHECKING:
    from coral_inference.inference_adapter.workflows import WorkflowImageData

DISABLE_SINKS = "workflows_core.disable_sinks"
SINK_INIT_PARAMETERS = ["coral_context", DISABLE_SINKS]
DISABLED_MESSAGE = "Sink was disabled by the workflow's disable_sinks setting"


def sinks_disabled(init_parameters: Mapping[str, Any]) -> bool:
    return bool(init_parameters.get(DISABLE_SINKS, False))


def source_of(image: WorkflowImageData) -> str:
    """The frame's ``video_identifier`` (a camera, file or stream), or "default"."""
    metadata = getattr(image, "video_metadata", None)
    identifier = getattr(metadata, "video_identifier", None)
    return str(identifier) if identifier not in (None, "") else "default"


def pipeline_source_key(image: Any) -> str:
    """What recordings folders, metric labels and preview channels are keyed by.

    In a pipeline process with a declared identity (Coral's workers, the stream
    manager's) the pipeline's key (``coral_inference.runtime.process.pipeline_key``):
    two pipelines never share a folder, series or channel even though both report
    source ``0``. Elsewhere (a notebook, ``coral-runtime run``) the source, as before.
    """

    source = source_of(image)
    return pipeline_key(source) if current_pipeline_identity() is not None else source


def media_time_of(image: WorkflowImageData) -> float:
    """Seconds on the frame's own timeline: frame number / fps for files, capture time otherwise."""
    metadata = getattr(image, "video_metadata", None)
    if metadata is not None and metadata.comes_from_video_file and metadata.fps:
        return metadata.frame_number / float(metadata.fps)
    stamp = getattr(metadata, "frame_timestamp", None)
    return stamp.timestamp() if stamp is not None else time.time()


def capture_time_of(image: WorkflowImageData) -> float:
    """Wall-clock capture time of the frame (now when unknown)."""
    stamp = getattr(getattr(image, "video_metadata", None), "frame_timestamp", None)
    return stamp.timestamp() if stamp is not None else time.time()


def fps_of(image: WorkflowImageData) -> float | None:
    metadata = getattr(image, "video_metadata", None)
    fps = getattr(metadata, "fps", None) or getattr(metadata, "measured_fps", None)
    return float(fps) if fps else None
