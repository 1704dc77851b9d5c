"""URL artifacts: fetched over HTTP or file://, verified, cached, never left half-written."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from coral_inference.models import ArtifactDownloadError, ChecksumMismatchError, load_package
from coral_inference.models.artifacts import ensure_artifact
from tests.conftest import free_port
from tests.models.builders import sha256, write_package

PAYLOAD = b"model bytes " * 5000


@pytest.fixture
def http_root(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "model.onnx").write_bytes(PAYLOAD)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _package(tmp_path, url, digest):
    root = write_package(
        tmp_path / "pkg",
        classes=["a"],
        input={"width": 8, "height": 8},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"url": url, "sha256": digest}},
    )
    return load_package(root)


def test_http_artifact_is_downloaded_verified_and_reused(tmp_path, http_root, capsys):
    served, base = http_root
    digest = sha256(served / "model.onnx")
    package = _package(tmp_path, f"{base}/model.onnx", digest)
    path = ensure_artifact(package, "onnxruntime", tmp_path / "cache", progress=True)
    assert path.read_bytes() == PAYLOAD and path.parent.name == digest[:16]
    assert "model.onnx" in capsys.readouterr().err  # the progress bar went to stderr
    (served / "model.onnx").unlink()  # a second call uses the verified cached copy
    assert ensure_artifact(package, "onnxruntime", tmp_path / "cache", progress=False) == path


def test_checksum_mismatch_after_download_leaves_nothing_behind(tmp_path, http_root):
    _, base = http_root
    package = _package(tmp_path, f"{base}/model.onnx", "0" * 64)
    with pytest.raises(
        ChecksumMismatchError,
        match=r"sha256 mismatch: expected 0{64} \(artifacts\.onnxruntime\.sha256 in .*, downloaded from http://",
    ):
        ensure_artifact(package, "onnxruntime", tmp_path / "cache", progress=False)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_http_error_is_a_download_error(tmp_path, http_root):
    _, base = http_root
    package = _package(tmp_path, f"{base}/missing.onnx", "0" * 64)
    with pytest.raises(
        ArtifactDownloadError, match=r"missing\.onnx: download failed: HTTP Error 404"
    ):
        ensure_artifact(package, "onnxruntime", tmp_path / "cache", progress=False)


def test_file_url_artifact(tmp_path):
    source = tmp_path / "elsewhere.onnx"
    source.write_bytes(PAYLOAD)
    package = _package(tmp_path, source.as_uri(), sha256(source))
    assert (
        ensure_artifact(package, "onnxruntime", tmp_path / "cache", progress=False).read_bytes()
        == PAYLOAD
    )
