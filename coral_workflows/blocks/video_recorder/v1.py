# pyright: reportInvalidTypeForm=false, reportIncompatibleVariableOverride=false
# (Selector(kind=[...]) in annotations and type: Literal[...] narrowing the base
# manifest's type: str, as in Roboflow's own blocks)
"""``coral/video_recorder@v1``: record a video stream as MP4 segments and event clips."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import ConfigDict, Field

from coral_inference.inference_adapter.workflows import (
    BlockResult,
    OutputDefinition,
    Selector,
    WorkflowBlock,
    WorkflowBlockManifest,
    WorkflowImageData,
    kinds,
)
from coral_inference.media.recorder import OutsideRecordingsRootError, RecorderOptions
from coral_inference.media.retention import RetentionPolicy
from coral_inference.runtime.context import RuntimeContext
from coral_inference.server.worker import observe_frame
from coral_workflows.blocks.sink_support import (
    DISABLED_MESSAGE,
    SINK_INIT_PARAMETERS,
    capture_time_of,
    fps_of,
    media_time_of,
    pipeline_source_key,
    sinks_disabled,
)

logger = logging.getLogger("coral_workflows.video_recorder")

LONG_DESCRIPTION = """
Record the frames that reach this step as H.264 MP4 files on the device.

**How it works.** Each video source (its `video_identifier`) gets its own folder
under `output_directory` — in a pipeline process (Coral's web control plane, the
inference server's stream manager) the folder is named after the pipeline, so two
pipelines never share one — which must lie inside the runtime's recordings root
(`storage.recordings`). Frames are handed to an encoding thread behind a bounded
queue: `run` never waits for the encoder, and a frame that does not fit is
dropped and counted. Files are fragmented MP4, so a crash or power cut leaves a
playable file, and they play in a browser as written.

* `continuous` mode writes back-to-back segments of `segment_seconds`, named by
  their start time (`segment_20261122T154500.000Z.mp4`).
* `events` mode writes a clip while `trigger` is true: it starts `pre_roll_seconds`
  before the trigger (from memory) and ends `post_roll_seconds` after the trigger
  was last true (`event_….mp4`).
* `continuous_and_events` does both from a single encode.

A retention policy (age, folder size, free disk) runs in the background and
never deletes a file being written.

**Connect it** after any image-producing step: the input image, or a
visualisation of detections. Feed `trigger` from a boolean such as an
expression `count > 0` or a line-counter change.
"""


class BlockManifest(WorkflowBlockManifest):
    model_config = ConfigDict(
        json_schema_extra={
            "name": "Video Recorder",
            "version": "v1",
            "short_description": "Record MP4 segments and event clips (pre/post roll) with "
            "retention.",
            "long_description": LONG_DESCRIPTION,
            "license": "Apache-2.0",
            "block_type": "sink",
            "ui_manifest": {"section": "video", "icon": "fal fa-video", "blockPriority": 5},
        }
    )
    type: Literal["coral/video_recorder@v1"]
    image: Selector(kind=[kinds.IMAGE_KIND]) = Field(
        description="Frames to record (the input image or a visualisation).",
        examples=["$inputs.image", "$steps.bounding_box_visualization.image"],
    )
    trigger: Selector(kind=[kinds.BOOLEAN_KIND]) | bool | None = Field(
        default=None,
        description="Event clips are recorded while this is true (events modes only).",
        examples=["$steps.has_people.output", True],
    )
    mode: Literal["continuous", "events", "continuous_and_events"] = Field(
        default="continuous",
        description="Continuous segments, event clips driven by `trigger`, or both.",
        examples=["continuous", "events"],
    )
    output_directory: Selector(kind=[kinds.STRING_KIND]) | str = Field(
        default=".",
        description="Folder relative to the recordings root (storage.recordings); one subfolder "
        "per source.",
        examples=[".", "gate-camera"],
    )
    segment_seconds: Selector(kind=[kinds.INTEGER_KIND, kinds.FLOAT_KIND]) | float | None = Field(
        default=None,
        description="Length of continuous segments (default: recording.segment_seconds).",
        examples=[60, "$inputs.segment_seconds"],
    )
    pre_roll_seconds: Selector(kind=[kinds.INTEGER_KIND, kinds.FLOAT_KIND]) | float = Field(
        default=5.0,
        description="Seconds kept before the trigger in an event clip.",
        examples=[5, 10],
    )
    post_roll_seconds: Selector(kind=[kinds.INTEGER_KIND, kinds.FLOAT_KIND]) | float = Field(
        default=5.0,
        description="Seconds recorded after the trigger was last true.",
        examples=[5, 10],
    )
    codec: Literal["h264", "mpeg4"] | None = Field(
        default=None,
        description="h264 (browser-playable) or mpeg4 (default: recording.codec).",
        examples=["h264"],
    )
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] | None = (
        Field(
            default=None,
            description="Encoder speed preset: faster uses less CPU and more disk (default: "
            "recording.preset).",
            examples=["veryfast"],
        )
    )
    quality: int | None = Field(
        default=None,
        ge=0,
        le=51,
        description="H.264 constant rate factor, lower is better (default: recording.crf).",
        examples=[23],
    )
    fps: float | None = Field(
        default=None,
        gt=0,
        description="Frame rate written in the file (default: the stream's).",
        examples=[15],
    )
    width: int | None = Field(
        default=None,
        gt=0,
        description="Scale frames to this width (default: the stream's).",
        examples=[1280],
    )
    height: int | None = Field(
        default=None,
        gt=0,
        description="Scale frames to this height (default: the stream's).",
        examples=[720],
    )
    retention_max_age_hours: float | None = Field(
        default=None,
        gt=0,
        description="Delete recordings older than this (default: "
        "recording.retention.max_age_hours).",
        examples=[168],
    )
    retention_max_gb: float | None = Field(
        default=None,
        gt=0,
        description="Keep the output directory under this size (default: "
        "recording.retention.max_gb).",
        examples=[20],
    )
    retention_min_free_gb: float | None = Field(
        default=None,
        ge=0,
        description="Delete oldest recordings while free disk is below this (default: "
        "recording.retention.min_free_gb).",
        examples=[2],
    )

    @classmethod
    def describe_outputs(cls) -> list[OutputDefinition]:
        return [
            OutputDefinition(name="error_status", kind=[kinds.BOOLEAN_KIND]),
            OutputDefinition(name="message", kind=[kinds.STRING_KIND]),
            OutputDefinition(name="file", kind=[kinds.STRING_KIND]),
        ]

    @classmethod
    def get_execution_engine_compatibility(cls) -> str | None:
        return ">=1.3.0,<2.0.0"


class VideoRecorderBlockV1(WorkflowBlock):
    def __init__(self, coral_context: RuntimeContext, **engine_parameters: Any):
        self._context = coral_context
        self._disabled = sinks_disabled(engine_parameters)

    @classmethod
    def get_init_parameters(cls) -> list[str]:
        return list(SINK_INIT_PARAMETERS)

    @classmethod
    def get_manifest(cls) -> type[WorkflowBlockManifest]:
        return BlockManifest

    def run(
        self,
        image: WorkflowImageData,
        trigger: bool | None,
        mode: str,
        output_directory: str,
        segment_seconds: float | None,
        pre_roll_seconds: float,
        post_roll_seconds: float,
        codec: str | None,
        preset: str | None,
        quality: int | None,
        fps: float | None,
        width: int | None,
        height: int | None,
        retention_max_age_hours: float | None,
        retention_max_gb: float | None,
        retention_min_free_gb: float | None,
    ) -> BlockResult:
        if self._disabled:
            return {"error_status": False, "message": DISABLED_MESSAGE, "file": ""}
        service = self._context.recordings
        source = pipeline_source_key(image)  # the pipeline's own folder, not source "0"
        observe_frame(self._context, image)
        try:
            options = RecorderOptions.from_config(
                self._context.config.recording,
                mode=mode,
                segment_seconds=segment_seconds,
                pre_roll_s=pre_roll_seconds,
                post_roll_s=post_roll_seconds,
                codec=codec,
                preset=preset,
                crf=quality,
                fps=fps,
                width=width,
                height=height,
            )
            retention = RetentionPolicy.from_config(
                self._context.config.recording.retention,
                max_age_hours=retention_max_age_hours,
                max_gb=retention_max_gb,
                min_free_gb=retention_min_free_gb,
            )
            recorder = service.recorder(output_directory, source, options, retention)
        except (OutsideRecordingsRootError, ValueError, TypeError) as exc:
            return {"error_status": True, "message": str(exc), "file": ""}
        result = recorder.submit(
            image.numpy_image,
            media_time=media_time_of(image),
            wall_time=capture_time_of(image),
            trigger=bool(trigger) if trigger is not None else None,
            fps=fps_of(image),
        )
        file = str(result.file) if result.file else ""
        if result.error:
            return {
                "error_status": True,
                "message": f"recorder {source}: {result.error}",
                "file": file,
            }
        if not result.accepted:
            return {
                "error_status": False,
                "message": "frame dropped: the encoder is behind",
                "file": file,
            }
        return {"error_status": False, "message": "recording", "file": file}
