"""Media runtime: video recording (segments, event clips, retention) and live WebRTC preview.

``recorder`` turns frames into fragmented MP4 files on an encoding thread per
source, ``retention`` keeps recording folders within their limits, ``webrtc``
serves the latest frame of named channels to many viewers. Nothing here imports
``inference``; the workflow blocks in ``coral_workflows`` are thin callers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_recording_service", "get_stream_hub"]


def get_recording_service(context: Any) -> Any:
    """The context's ``RecordingService`` (one per runtime, closed at shutdown)."""
    from coral_inference.media.recorder import get_recording_service as _get

    return _get(context)


def get_stream_hub(context: Any) -> Any:
    """The context's ``StreamHub`` (one per runtime, closed at shutdown)."""
    from coral_inference.media.webrtc import get_stream_hub as _get

    return _get(context)
