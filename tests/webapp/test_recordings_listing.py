"""The recordings listing survives odd entries in the recordings tree (issue 13.10)."""

from __future__ import annotations

from types import SimpleNamespace

from coral_inference.config.schema import RuntimeDescriptor
from coral_inference.webapp.services.streams import StreamService


def test_a_symlink_loop_named_mp4_is_left_out_of_the_listing(tmp_path):
    root = tmp_path / "recordings"
    cam = root / "cam"
    cam.mkdir(parents=True)
    (cam / "segment.mp4").write_bytes(b"\x00" * 64)
    (cam / "loop-a.mp4").symlink_to(cam / "loop-b.mp4")
    (cam / "loop-b.mp4").symlink_to(cam / "loop-a.mp4")
    (cam / "self.mp4").symlink_to(cam / "self.mp4")
    config = RuntimeDescriptor.model_validate(
        {"storage": {"root": str(tmp_path), "recordings": str(root)}}
    )
    service = StreamService(SimpleNamespace(config=config))
    service._duration = lambda path, size, mtime: None  # no decoder: the bytes are not a video
    rows = service.list_recordings()
    assert [row["path"] for row in rows] == ["cam/segment.mp4"]
