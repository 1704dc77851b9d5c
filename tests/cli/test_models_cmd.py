"""``coral-runtime models …`` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import coral_inference
from tests.models.builders import constant_model, encode_yolov8, write_package


def coral(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "coral_inference.cli.main", "models", *args, "--no-env"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_inspect_json_describes_the_bundled_demo():
    out = coral("inspect", "coral-demo", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["name"] == "coral-demo" and info["classes"] == ["circle", "square", "triangle"]
    assert info["head"]["type"] == "yolov8" and info["input"]["width"] == 320
    assert info["artifacts"]["onnxruntime"]["backend_available_here"] is True
    assert info["convert"]["rknn"]["head"]["type"] == "yolov8_dfl"


def test_validate_passes_the_demo_and_fails_a_wrong_manifest(tmp_path):
    assert coral("validate", "coral-demo").returncode == 0
    root = tmp_path / "pkg"
    out = encode_yolov8(np.array([[1, 1, 9, 9]], np.float32), np.array([0]), np.array([0.9]), 2, 21)
    constant_model(root / "model.onnx", [out], input_shape=(1, 3, 32, 32))
    write_package(
        root,
        classes=["a", "b", "c"],
        input={"width": 32, "height": 32},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}},
    )  # 3 classes, the model has 2
    result = coral("validate", str(root), "--json")
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["artifacts.onnxruntime"]["status"] == "ok"
    assert checks["run on onnxruntime"]["status"] == "fail"
    assert (
        "head yolov8 with 3 classes expects an output [1, 7, N], got [1, 6, 21]"
        in checks["run on onnxruntime"]["detail"]
    )


def test_validate_reports_a_wrong_input_size(tmp_path):
    root = tmp_path / "pkg"
    constant_model(
        root / "model.onnx", [np.zeros((1, 6, 4), np.float32)], input_shape=(1, 3, 32, 32)
    )
    write_package(
        root,
        classes=["a", "b"],
        input={"width": 64, "height": 64},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}},
    )
    result = coral("validate", str(root), "--json")
    detail = {c["name"]: c for c in json.loads(result.stdout)}["run on onnxruntime"]["detail"]
    assert result.returncode == 1
    assert "the model's input is [1, 3, 32, 32] but the manifest describes [1, 3, 64, 64]" in detail


def test_validate_lists_manifest_problems(tmp_path):
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "coral-model.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "classes": ["a"],
                "input": {"width": 8},
                "head": {"type": "yolo"},
                "artifacts": {},
            }
        )
    )
    result = coral("validate", str(root), "--json")
    assert result.returncode == 1
    details = [c["detail"] for c in json.loads(result.stdout)]
    assert any(d.endswith("input.height: required field is missing") for d in details)
    assert any("head.type: Input should be 'yolov8', 'yolov8_dfl'" in d for d in details)


def test_bench_reports_each_stage(tmp_path):
    result = coral(
        "bench", "coral-demo", "--frames", "3", "--warmup", "1", "--size", "640x480", "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [run] = data["results"]
    assert run["backend"] == "onnxruntime" and run["frame"] == [640, 480] and run["frames"] == 3
    for stage in ("preprocess", "inference", "decode", "total"):
        assert run[stage]["mean_ms"] > 0
    assert run["sequential_fps"] > 0 and run["detections"] > 0
    assert data["skipped"] == []  # the demo has no rknn artifact: rknn is not even tried


def test_bench_takes_a_confidence_and_prints_medians(tmp_path):
    def boxes(confidence: str) -> float:
        result = coral(
            "bench",
            "coral-demo",
            "--frames",
            "2",
            "--warmup",
            "0",
            "--size",
            "640x480",
            "--confidence",
            confidence,
            "--json",
        )
        assert result.returncode == 0, result.stderr
        [run] = json.loads(result.stdout)["results"]
        assert run["total"]["p50_ms"] > 0
        return run["detections"]

    assert boxes("0.01") > boxes("0.9")


def test_convert_without_rknn_toolkit_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CORAL_RKNN_TOOLKIT_PYTHON", raising=False)
    result = coral(
        "convert", "coral-demo", "--json", env={"CORAL_CACHE_DIR": str(tmp_path)}
    )  # no toolkit env there
    assert result.returncode == 2
    data = json.loads(result.stdout)
    assert data["converted"] is False and "coral-runtime models toolkit install" in data["error"]
    assert (
        data["plan"]["onnx"].endswith("model_yolov8_dfl.onnx")
        and data["plan"]["head"] == "yolov8_dfl"
    )
    assert data["plan"]["mean_values"] == [[0.0, 0.0, 0.0]] and data["plan"]["std_values"] == [
        [255.0, 255.0, 255.0]
    ]


def test_missing_package_exits_2_with_the_reason():
    result = coral("inspect", "no-such-package")
    assert result.returncode == 2
    assert "model package 'no-such-package' not found" in result.stderr


@pytest.mark.optional
def test_convert_builds_an_rknn_with_the_toolkit_environment(tmp_path):
    from coral_inference.models.convert import toolkit_python

    if toolkit_python() is None:
        pytest.skip(
            "no rknn-toolkit2 environment (coral-runtime models toolkit install builds one)"
        )
    manifest = (
        Path(coral_inference.__file__).parent / "models" / "zoo" / "coral-demo" / "coral-model.yaml"
    )
    before = manifest.read_bytes()
    result = coral("convert", "coral-demo", "-o", str(tmp_path / "demo.rknn"), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert data["converted"] is True and (tmp_path / "demo.rknn").read_bytes()[:4] == b"RKNN"
    # the simulator's parity check on held-out frames passes the gate; the bundled package is untouched
    assert data["report"]["passed"] is True and data["report"]["agreement"] >= 0.95
    assert data["added"] is False and manifest.read_bytes() == before
    assert (tmp_path / "demo.rknn.parity.json").is_file()
    entry = data["manifest_entry"]
    assert entry["target_platform"] == "rk3588" and entry["head"]["type"] == "yolov8_dfl"
    assert entry["input"] == {"layout": "NHWC", "dtype": "uint8"} and len(entry["sha256"]) == 64


def test_import_an_ultralytics_export_with_no_flag_and_refuse_a_corrupt_file(tmp_path):
    from tests.models.importing.ultra_support import DETECT_FIXTURES

    result = coral(
        "import",
        str(DETECT_FIXTURES / "yolo26n-nmsfalse.onnx"),
        "--out",
        str(tmp_path / "pkg"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (
        info["imported"] is True
        and info["head"] == "end2end"
        and info["classes"] == ["circle", "square", "triangle"]
    )
    checks = {c["name"]: c["status"] for c in info["checks"]}
    assert checks["run on onnxruntime"] == "ok" and checks["artifacts.onnxruntime"] == "ok"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file" * 10)
    refused = coral("import", str(broken), "--out", str(tmp_path / "pkg2"), "--json")
    assert refused.returncode == 2
    assert "not a readable ONNX model" in json.loads(refused.stdout)["error"]
