"""Roboflow models: end to end through inference's real download code against a loopback server
that answers like Roboflow's model API, and offline from a cache directory laid out as inference
lays it out. No test reaches the internet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import onnx
import pytest
import yaml

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.cli.roboflow_fetch import (
    RoboflowFetchError,
    fetch_roboflow_model,
    observe_downloads,
)
from coral_inference.models.detector import Detector
from coral_inference.models.importing import import_model
from coral_inference.models.package import load_package, sha256_of
from coral_inference.models.validation import check_package
from tests.models.importing.ultra_support import DETECT_FIXTURES, frames

CLASSES = ["circle", "square", "triangle"]
API_KEY = "coral-test-key"


def _roboflow_weights(tmp_path: Path) -> bytes:
    """The YOLOv8n fixture without Ultralytics metadata, as Roboflow serves a trained version."""
    model = onnx.load(str(DETECT_FIXTURES / "yolov8n.onnx"))
    del model.metadata_props[:]
    path = tmp_path / "weights.onnx"
    onnx.save(model, str(path))
    return path.read_bytes()


def _environment(fmt: str = "Stretch to") -> dict:
    preprocessing = {
        "auto-orient": {"enabled": True},
        "resize": {"enabled": True, "format": fmt, "width": 640, "height": 640},
    }
    return {
        "PREPROCESSING": json.dumps(preprocessing),
        "CLASS_MAP": {str(i): c for i, c in enumerate(CLASSES)},
    }


def _cache_dir(root: Path, weights: bytes, fmt: str = "Stretch to") -> Path:
    version = root / "shapes" / "1"
    version.mkdir(parents=True)
    (version / "weights.onnx").write_bytes(weights)
    (version / "class_names.txt").write_text("\n".join(CLASSES) + "\n")
    (version / "environment.json").write_text(json.dumps(_environment(fmt)))
    (version / "model_type.json").write_text(
        json.dumps({"project_task_type": "object-detection", "model_type": "yolov8n"})
    )
    return version


@pytest.fixture
def roboflow_api(tmp_path):
    """A loopback server answering inference's model-data and artifact requests for shapes/1."""
    weights = _roboflow_weights(tmp_path)
    requests_seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes, kind: str = "application/json"):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            requests_seen.append(url.path)
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            query = parse_qs(url.query)
            if url.path == "/ort/shapes/1":
                if query.get("api_key") != [API_KEY]:
                    return self._send(401, b'{"error": {"message": "Unauthorized"}}')
                answer = {
                    "ort": {
                        "model": f"{base}/files/weights.onnx",
                        "environment": f"{base}/files/env.json",
                        "classes": CLASSES,
                        "type": "yolov8n",
                        "name": "shapes",
                    }
                }
                return self._send(200, json.dumps(answer).encode())
            if url.path == "/files/weights.onnx":
                return self._send(200, weights, "application/octet-stream")
            if url.path == "/files/env.json":
                return self._send(200, json.dumps(_environment()).encode())
            return self._send(404, b'{"error": {"message": "not found"}}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests_seen
    server.shutdown()
    server.server_close()


def _coral_import(*args, env):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "coral_inference.cli.main",
            "models",
            "import",
            *args,
            "--json",
            "--no-env",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            **os.environ,
            "DISABLE_VERSION_CHECK": "True",
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
            "RETRY_CONNECTION_ERRORS_TO_ROBOFLOW_API": "False",
            **env,
        },
    )


@pytest.mark.slow  # a subprocess that imports inference.core (~12 s) for its real download code
def test_roboflow_id_is_fetched_through_inference_and_imported(tmp_path, roboflow_api):
    base, seen = roboflow_api
    env = {
        "API_BASE_URL": base,
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "ROBOFLOW_API_KEY": API_KEY,
    }
    result = _coral_import("shapes/1", "--out", str(tmp_path / "pkg"), env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    info = json.loads(result.stdout)
    assert info["kind"] == "roboflow" and info["classes"] == CLASSES and info["head"] == "yolov8"
    assert seen[:1] == ["/ort/shapes/1"] and set(seen[1:]) == {
        "/files/weights.onnx",
        "/files/env.json",
    }
    # inference's own cache layout now holds the model
    cached = tmp_path / "cache" / "shapes" / "1"
    assert (cached / "class_names.txt").read_text().split() == CLASSES
    package = load_package(tmp_path / "pkg")
    assert (
        package.input.resize == "stretch"
    )  # Roboflow's "Stretch to", not Coral's letterbox default
    assert package.manifest.metadata["source"]["model_id"] == "shapes/1"

    unknown = _coral_import("shapes/7", "--out", str(tmp_path / "pkg7"), env=env)
    assert unknown.returncode == 2
    error = json.loads(unknown.stdout)["error"]
    assert "does not know this model" in error and "project id and version" in error


def test_download_progress_counts_the_bytes_of_a_plain_requests_get(roboflow_api, monkeypatch):
    """inference fetches weights with a bare requests.get; the byte bar sees its body arrive."""
    import requests

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    base, _ = roboflow_api
    seen: list[tuple[int, int | None]] = []
    with observe_downloads(lambda done, total: seen.append((done, total))):
        body = requests.get(f"{base}/files/weights.onnx", timeout=30).content
    assert seen[0] == (0, len(body)) and seen[-1] == (len(body), len(body))
    received = [done for done, _ in seen]
    assert len(received) > 3 and received == sorted(received)  # read piece by piece, as it came
    seen.clear()
    requests.get(f"{base}/files/env.json", timeout=30)  # after the block: no counting hook left
    assert not seen


def test_roboflow_id_without_api_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "empty"))
    with pytest.raises(RoboflowFetchError, match="export ROBOFLOW_API_KEY="):
        fetch_roboflow_model("shapes/1", progress=False)
    with pytest.raises(RoboflowFetchError, match="ROBOFLOW_API_KEY"):
        import_model(
            "shapes/1",
            out=tmp_path / "pkg",
            fetcher=lambda m: fetch_roboflow_model(m, progress=False),
        )


def test_offline_from_inference_cache_dir_matches_a_hand_written_stretch_package(tmp_path):
    cached = _cache_dir(tmp_path / "cache", _roboflow_weights(tmp_path))
    package = import_model(cached, out=tmp_path / "pkg").package
    assert package.classes == CLASSES and package.input.resize == "stretch"
    hand = tmp_path / "hand"
    hand.mkdir()
    (hand / "m.onnx").write_bytes((cached / "weights.onnx").read_bytes())
    (hand / "coral-model.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "hand",
                "classes": CLASSES,
                "head": {"type": "yolov8"},
                "input": {"width": 640, "height": 640, "resize": "stretch"},
                "artifacts": {
                    "onnxruntime": {"file": "m.onnx", "sha256": sha256_of(hand / "m.onnx")}
                },
            }
        )
    )
    a = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    b = Detector(load_package(hand), OnnxRuntimeBackend().prepare_session(load_package(hand)))
    try:
        for frame in frames():
            np.testing.assert_array_equal(
                a.detect(frame, confidence=0.1).xyxy, b.detect(frame, confidence=0.1).xyxy
            )
    finally:
        a.close()
        b.close()


def test_cached_roboflow_id_imports_offline_without_a_key(tmp_path, monkeypatch):
    _cache_dir(tmp_path / "cache", _roboflow_weights(tmp_path), fmt="Fit (grey edges) in")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    result = import_model(
        "shapes/1", out=tmp_path / "pkg", fetcher=lambda m: fetch_roboflow_model(m, progress=False)
    )
    assert result.kind == "roboflow"
    assert (result.package.input.resize, result.package.input.pad_value) == ("letterbox", 114)


def test_roboflow_package_with_default_resize_is_a_warning(tmp_path):
    cached = _cache_dir(tmp_path / "cache", _roboflow_weights(tmp_path))
    package = import_model(cached, out=tmp_path / "pkg").package
    manifest = yaml.safe_load(package.manifest_path.read_text())
    del manifest["input"]["resize"]  # what a hand edit back to Coral's default looks like
    package.manifest_path.write_text(yaml.safe_dump(manifest))
    checks = {c.name: c for c in check_package(load_package(tmp_path / "pkg"))}
    assert checks["input.resize"].status == "warn" and "Stretch to" in checks["input.resize"].detail


def test_preprocessing_coral_cannot_reproduce_is_refused(tmp_path):
    cached = _cache_dir(tmp_path / "cache", _roboflow_weights(tmp_path))
    env = _environment()
    pre = json.loads(env["PREPROCESSING"])
    pre["grayscale"] = {"enabled": True}
    env["PREPROCESSING"] = json.dumps(pre)
    (cached / "environment.json").write_text(json.dumps(env))
    with pytest.raises(Exception, match="grayscale"):
        import_model(cached, out=tmp_path / "pkg")
