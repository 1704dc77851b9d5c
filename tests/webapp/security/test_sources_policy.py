"""SourcePolicy (13.9): local files only from the roots, cameras from a list, no listening URLs."""

from __future__ import annotations

import pytest

from coral_inference.pipelines.sources_policy import (
    UNREACHABLE,
    SourcePolicy,
    SourceRefusedError,
    capture_options,
    unreachable,
)

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256))


@pytest.fixture
def roots(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(VIDEO)
    (tmp_path / "outside.mp4").write_bytes(VIDEO)
    return tmp_path


def policy(root, **kw) -> SourcePolicy:
    kw.setdefault("devices", [0, "/dev/video2"])
    kw.setdefault("schemes", ["rtsp", "http", "https", "srt", "tcp", "udp"])
    return SourcePolicy(roots=[root / "media"], **kw)


def test_a_file_inside_a_root_is_admitted_resolved(roots):
    checked = policy(roots).check(str(roots / "media" / "clip.mp4"))
    assert checked.kind == "file" and checked.value == str((roots / "media" / "clip.mp4").resolve())
    assert policy(roots).check("clip.mp4").value == checked.value  # relative to a root


def test_outside_missing_and_escaping_files_read_alike(roots):
    (roots / "media" / "link.mp4").symlink_to(roots / "outside.mp4")
    (roots / "media" / "loop.mp4").symlink_to(roots / "media" / "loop.mp4")
    messages = set()
    for name in (
        str(roots / "outside.mp4"),
        str(roots / "missing.mp4"),
        "link.mp4",
        "loop.mp4",
        "../outside.mp4",
        "/etc/passwd",
        str(roots / "media"),
    ):
        with pytest.raises(SourceRefusedError) as caught:
            policy(roots).check(name)
        assert caught.value.code == "source_not_allowed"
        messages.add(str(caught.value).replace(repr(name), "NAME"))
    assert len(messages) == 1, messages


def test_a_playlist_inside_a_root_is_not_a_video(roots):
    (roots / "media" / "list.mp4").write_bytes(b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")
    (roots / "media" / "notes.mp4").write_text("just text\n")
    for name in ("list.mp4", "notes.mp4"):
        with pytest.raises(SourceRefusedError):
            policy(roots).check(name)


@pytest.mark.parametrize(
    "source, kind", [(0, "camera"), ("0", "camera"), ("/dev/video2", "camera")]
)
def test_listed_cameras_are_admitted(roots, source, kind):
    assert policy(roots).check(source).kind == kind


@pytest.mark.parametrize(
    "source, code",
    [
        (1, "camera_not_allowed"),
        ("7", "camera_not_allowed"),
        (-1, "invalid_camera"),
        (99999, "invalid_camera"),
        ("99999", "invalid_camera"),
        ("/dev/video0", "source_not_allowed"),
    ],
)
def test_unlisted_or_absurd_cameras_are_refused(roots, source, code):
    with pytest.raises(SourceRefusedError) as caught:
        policy(roots).check(source)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "url",
    [
        "tcp://127.0.0.1:5000?listen=1",
        "tcp://0.0.0.0:5000",
        "udp://@:1234",
        "srt://10.0.0.2:9000?mode=listener",
        "rtsp://0.0.0.0/x",
        "udp://[::]:5000",
        "tcp://h:1?listen=2",
    ],
)
def test_urls_that_would_listen_are_refused(roots, url):
    with pytest.raises(SourceRefusedError) as caught:
        policy(roots).check(url)
    assert caught.value.code == "listening_source"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "concat:/a|/b",
        "gopher://h/",
        "ftp://h/v.mp4",
        "subfile:///etc/passwd",
        "tcp://127.0.0.1:6379",
    ],
)
def test_schemes_outside_the_allowlist_are_refused(roots, url):
    strict = policy(roots, schemes=["rtsp", "http", "https"])
    with pytest.raises(SourceRefusedError) as caught:
        strict.check(url)
    assert caught.value.code in ("scheme_not_allowed", "source_not_allowed")


def test_http_sources_are_downloads_unless_read_live(roots):
    assert policy(roots).check("https://h/v.mp4").kind == "download"
    assert policy(roots).check("https://h/live.m3u8", download=False).kind == "stream"
    assert policy(roots).check("rtsp://user:pw@10.0.0.9/s").kind == "stream"


def test_redirects_go_only_to_allowed_hosts(roots):
    p = policy(roots, redirect_hosts=["cdn.example.org"])
    assert p.redirect_allowed("https://cdn.example.org/v.mp4")
    assert not p.redirect_allowed("http://127.0.0.1:6379/")
    assert not p.redirect_allowed("file:///etc/passwd")


def test_ffmpeg_reads_a_file_only_as_a_file():
    assert capture_options("file") == "protocol_whitelist;file"
    assert "file" not in capture_options("stream").split(";")[1].split(",")


def test_one_message_for_every_unreachable_source():
    assert unreachable("rtsp://u:p@h/1") == f"source 'rtsp://***@h/1' {UNREACHABLE}"


def test_the_default_config_admits_videos_dir_and_no_camera(tmp_path):
    from coral_inference.config.schema import PipelinesConfig

    cfg = PipelinesConfig.model_validate({"videos_dir": str(tmp_path)})
    (tmp_path / "abc123abc123_v.mp4").write_bytes(VIDEO)
    p = SourcePolicy.from_config(cfg)
    assert p.check(str(tmp_path / "abc123abc123_v.mp4")).kind == "file"
    with pytest.raises(SourceRefusedError):
        p.check(0)
    with pytest.raises(SourceRefusedError):
        p.check("tcp://10.0.0.2:5000")
