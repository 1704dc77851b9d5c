"""resolve_under: nothing outside a root is ever reached."""

from __future__ import annotations

import pytest

from coral_inference.webapp.errors import ForbiddenPathError, NotFoundError
from coral_inference.webapp.paths import existing_file_under, resolve_under


@pytest.fixture
def root(tmp_path):
    (tmp_path / "root/cam").mkdir(parents=True)
    (tmp_path / "root/cam/a.mp4").write_bytes(b"a")
    (tmp_path / "outside.mp4").write_bytes(b"o")
    return tmp_path / "root"


def test_a_path_inside_resolves(root):
    assert existing_file_under(root, "cam/a.mp4") == (root / "cam/a.mp4").resolve()
    assert resolve_under(root, "cam/./a.mp4") == (root / "cam/a.mp4").resolve()


@pytest.mark.parametrize(
    "bad",
    [
        "../outside.mp4",
        "cam/../../outside.mp4",
        "/etc/passwd",
        "..\\outside.mp4",
        "~/x",
        "",
        "cam/\x00a.mp4",
    ],
)
def test_escapes_are_refused(root, bad):
    with pytest.raises(ForbiddenPathError):
        resolve_under(root, bad)


def test_a_symlink_leading_out_is_refused(root):
    (root / "cam/link.mp4").symlink_to(root.parent / "outside.mp4")
    (root / "dirlink").symlink_to(root.parent)
    with pytest.raises(ForbiddenPathError):
        resolve_under(root, "cam/link.mp4")
    with pytest.raises(ForbiddenPathError):
        resolve_under(root, "dirlink/outside.mp4")


def test_a_missing_file_is_not_found(root):
    with pytest.raises(NotFoundError):
        existing_file_under(root, "cam/none.mp4", what="recording")
