"""The video-pipeline names Coral's runner needs (see the package docstring).

Importing this submodule runs the package's ``__init__`` first, which loads
``inference.core`` before these imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.core.interfaces.legacy_stream.inference_pipeline import InferencePipeline
    from streamvision.camera.entities import StatusUpdate, VideoFrame
    from streamvision.stream.watchdog import PipelineWatchDog
else:
    from inference.core.interfaces.camera.entities import StatusUpdate, VideoFrame
    from inference.core.interfaces.stream.inference_pipeline import InferencePipeline
    from inference.core.interfaces.stream.watchdog import PipelineWatchDog

__all__ = ["InferencePipeline", "PipelineWatchDog", "StatusUpdate", "VideoFrame"]
