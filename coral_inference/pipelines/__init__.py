"""Running Roboflow workflows on video sources: ``PipelineRunner`` wraps ``InferencePipeline``."""

from coral_inference.pipelines.runner import (
    PipelineResult,
    PipelineRunner,
    PipelineStartError,
    PipelineState,
    PipelineStateError,
    parse_source,
)

__all__ = [
    "PipelineResult",
    "PipelineRunner",
    "PipelineStartError",
    "PipelineState",
    "PipelineStateError",
    "parse_source",
]
