"""Media runtime: video recording (segments, event clips, retention) and live WebRTC preview.

``recorder`` turns frames into fragmented MP4 files on an encoding thread per
source, ``retention`` keeps recording folders within their limits, ``webrtc``
serves the latest frame of named channels to many viewers, ``frame_slot`` hands the
latest frame from one process to another through shared memory. The runtime context holds
one ``RecordingService`` (``context.recordings``) and one ``StreamHub``
(``context.streams``). Nothing here imports ``inference``; the workflow blocks in
``coral_workflows`` are thin callers.
"""
