# pyright: reportInvalidTypeForm=false, reportIncompatibleVariableOverride=false
# (Selector(kind=[...]) in annotations and type: Literal[...] narrowing the base
# manifest's type: str, as in Roboflow's own blocks)
"""``coral/webrtc_preview@v1``: publish frames to a live WebRTC preview channel."""

from __future__ import annotations

import time
from typing import Any, Literal

import cv2
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
from coral_inference.runtime.context import RuntimeContext
from coral_inference.runtime.process import current_pipeline_identity
from coral_inference.server.preview import publish_to_server
from coral_inference.server.worker import observe_frame
from coral_workflows.blocks.sink_support import (
    DISABLED_MESSAGE,
    SINK_INIT_PARAMETERS,
    capture_time_of,
    pipeline_source_key,
    sinks_disabled,
)

LONG_DESCRIPTION = """
Show the frames that reach this step live in a browser, over WebRTC.

The block hands each frame to the runtime's stream hub under a channel name;
the Coral web app answers viewers' WebRTC offers for that channel (and
`StreamHub.offer(channel, sdp)` does so from Python). Every viewer receives the
channel's latest frame, so viewers never slow the pipeline or each other, and a
channel with no recent frame shows a placeholder.

`channel` may contain `{source}`, replaced by the frame's video source, so one
workflow running on several cameras gets one channel per camera. In a pipeline
process (Coral's web control plane, the inference server's stream manager)
`{source}` is the pipeline's key, and a fixed channel name is prefixed with it
(`<pipeline>.<channel>`), so two pipelines of one workflow never share a channel. `max_fps`
limits how often frames are published; `overlay` draws the publishing rate and
the frame's age (capture to publish) in the corner.

Connect it after a visualisation step to watch detections, or directly to the
input image.
"""


class BlockManifest(WorkflowBlockManifest):
    model_config = ConfigDict(
        json_schema_extra={
            "name": "WebRTC Preview",
            "version": "v1",
            "short_description": "Publish frames to a live WebRTC preview channel.",
            "long_description": LONG_DESCRIPTION,
            "license": "Apache-2.0",
            "block_type": "sink",
            "ui_manifest": {"section": "video", "icon": "fal fa-tv", "blockPriority": 7},
        }
    )
    type: Literal["coral/webrtc_preview@v1"]
    image: Selector(kind=[kinds.IMAGE_KIND]) = Field(
        description="Frames to show.",
        examples=["$steps.bounding_box_visualization.image", "$inputs.image"],
    )
    channel: Selector(kind=[kinds.STRING_KIND]) | str = Field(
        default="{source}",
        description="Channel viewers ask for; '{source}' becomes the frame's video source.",
        examples=["{source}", "gate-camera", "$inputs.channel"],
    )
    max_fps: Selector(kind=[kinds.INTEGER_KIND, kinds.FLOAT_KIND]) | float = Field(
        default=15.0,
        description="Most frames per second published to the channel.",
        examples=[15, 30],
    )
    overlay: Selector(kind=[kinds.BOOLEAN_KIND]) | bool = Field(
        default=False,
        description="Draw publishing fps and frame latency on the preview.",
        examples=[True],
    )

    @classmethod
    def describe_outputs(cls) -> list[OutputDefinition]:
        return [
            OutputDefinition(name="error_status", kind=[kinds.BOOLEAN_KIND]),
            OutputDefinition(name="message", kind=[kinds.STRING_KIND]),
            OutputDefinition(name="channel", kind=[kinds.STRING_KIND]),
        ]

    @classmethod
    def get_execution_engine_compatibility(cls) -> str | None:
        return ">=1.3.0,<2.0.0"


def draw_overlay(frame: Any, lines: list[str]) -> Any:
    """A copy of ``frame`` with ``lines`` in the top-left corner on a dark band."""
    out = frame.copy()
    scale = max(0.4, out.shape[1] / 1600)
    height = int(28 * scale) + 6
    cv2.rectangle(out, (0, 0), (int(out.shape[1] * 0.45), height * len(lines) + 6), (0, 0, 0), -1)
    for i, text in enumerate(lines):
        cv2.putText(
            out,
            text,
            (8, height * (i + 1)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return out


class WebRtcPreviewBlockV1(WorkflowBlock):
    def __init__(self, coral_context: RuntimeContext, **engine_parameters: Any):
        self._context = coral_context
        self._disabled = sinks_disabled(engine_parameters)
        self._last_publish: dict[str, float] = {}
        self._fps: dict[str, float] = {}

    @classmethod
    def get_init_parameters(cls) -> list[str]:
        return list(SINK_INIT_PARAMETERS)

    @classmethod
    def get_manifest(cls) -> type[WorkflowBlockManifest]:
        return BlockManifest

    def run(
        self, image: WorkflowImageData, channel: str, max_fps: float, overlay: bool
    ) -> BlockResult:
        name = str(channel).replace("{source}", pipeline_source_key(image))
        identity = current_pipeline_identity()
        if identity is not None and "{source}" not in str(channel):
            # A pipeline process: one workflow run by two pipelines gets two channels.
            name = f"{identity.key}.{name}"
        observe_frame(self._context, image)
        if self._disabled:
            return {"error_status": False, "message": DISABLED_MESSAGE, "channel": name}
        now = time.monotonic()
        last = self._last_publish.get(name)
        if max_fps and last is not None and now - last < 1.0 / float(max_fps):
            return {"error_status": False, "message": "skipped: max_fps", "channel": name}
        if last is not None:
            self._fps[name] = 0.9 * self._fps.get(name, 1.0 / (now - last)) + 0.1 / max(
                now - last, 1e-6
            )
        self._last_publish[name] = now
        frame = image.numpy_image
        if overlay:
            age_ms = max(0.0, time.time() - capture_time_of(image)) * 1000
            frame = draw_overlay(
                frame, [f"{self._fps.get(name, 0.0):.1f} fps", f"latency {age_ms:.0f} ms"]
            )
        try:
            self._context.streams.publish(name, frame)
            publish_to_server(self._context, name, frame)  # an inference server's pipeline process
        except ValueError as exc:
            return {"error_status": True, "message": str(exc), "channel": name}
        return {"error_status": False, "message": "published", "channel": name}
