"""Small inputs for pipeline tests: a synthetic H.264 video and core-block workflows.

Pipelines and web tests need a video and a workflow that run offline with no
model: a moving square encoded with PyAV, and workflows of non-model core blocks.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_test_video(
    path: Path, *, frames: int = 60, fps: int = 15, width: int = 160, height: int = 120
) -> Path:
    """A square sliding left to right on grey, as H.264 in MP4 (``frames`` frames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            image = np.full((height, width, 3), 90, np.uint8)
            x = int((width - 30) * i / max(1, frames - 1))
            image[40:70, x : x + 30] = (0, 200, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def blur_workflow() -> dict:
    """Image in, blurred image out: core blocks only, no model, no API key."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "roboflow_core/image_blur@v1",
                "name": "blur",
                "image": "$inputs.image",
                "blur_type": "gaussian",
                "kernel_size": 5,
            },
        ],
        "outputs": [{"type": "JsonField", "name": "preview", "selector": "$steps.blur.image"}],
    }


def failing_workflow() -> dict:
    """Compiles, then fails on the first frame: OpenCV refuses the negative kernel size."""
    workflow = blur_workflow()
    workflow["inputs"].append({"type": "WorkflowParameter", "name": "kernel", "default_value": -4})
    workflow["steps"][0].update(blur_type="average", kernel_size="$inputs.kernel")
    return workflow
