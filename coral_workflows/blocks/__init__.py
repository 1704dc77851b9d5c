"""The blocks of the plugin, one folder per block and one module per version."""

from __future__ import annotations

import importlib

from coral_inference import compat

# module path -> block class name; imported only when the engine asks for blocks.
BLOCKS: dict[str, str] = {
    "coral_workflows.blocks.object_detection_model.v1": "CoralObjectDetectionModelBlockV1",
    "coral_workflows.blocks.instance_segmentation_model.v1": "CoralInstanceSegmentationModelBlockV1",
    "coral_workflows.blocks.keypoint_detection_model.v1": "CoralKeypointDetectionModelBlockV1",
    "coral_workflows.blocks.classification_model.v1": "CoralClassificationModelBlockV1",
    "coral_workflows.blocks.video_recorder.v1": "VideoRecorderBlockV1",
    "coral_workflows.blocks.metrics_sink.v1": "MetricsSinkBlockV1",
    "coral_workflows.blocks.webrtc_preview.v1": "WebRtcPreviewBlockV1",
}


def load_block_classes() -> list[type]:

    compat.require_inference()
    compat.load_inference_core()  # before any engine module: set-once configuration
    return [getattr(importlib.import_module(module), name) for module, name in BLOCKS.items()]
