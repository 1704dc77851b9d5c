"""``RuntimeContext.get_model``: name resolution, backend choice, caching, closing at shutdown."""

from __future__ import annotations

import numpy as np
import pytest

import coral_inference
from coral_inference.backends.base import BackendUnavailableError, UnknownBackendError
from coral_inference.models import ArtifactNotFoundError, PackageNotFoundError
from tests.backends.rknn_double import fake_board  # noqa: F401  (fixture)
from tests.models.builders import constant_model, encode_yolov8, write_package

BOXES = np.array([[8, 8, 24, 40]], np.float32)


@pytest.fixture
def package_dir(tmp_path):
    root = tmp_path / "pkg"
    constant_model(
        root / "model.onnx", [encode_yolov8(BOXES, np.array([1]), np.array([0.8]), 2, 84)]
    )
    return write_package(
        root,
        classes=["cat", "dog"],
        input={"width": 64, "height": 64},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}},
    )


def test_model_by_config_name_path_and_coral_id(package_dir):
    context = coral_inference.init({"models": {"pets": {"package": str(package_dir)}}})
    by_name = context.get_model("pets")
    assert by_name.package.name == "test-model" and by_name.backend_name == "onnxruntime"
    assert context.get_model("pets") is by_name  # cached per context
    assert context.get_model(str(package_dir)).package.root == by_name.package.root
    assert context.get_model("coral/pets").package.root == by_name.package.root
    detections = by_name.detect(np.zeros((64, 64, 3), np.uint8))
    np.testing.assert_allclose(detections.xyxy, BOXES)
    assert detections.data["class_name"].tolist() == ["dog"]
    assert by_name.describe()["session"]["providers"] == ["CPUExecutionProvider"]


def test_shutdown_closes_the_sessions(package_dir):
    context = coral_inference.init()
    model = context.get_model(str(package_dir))
    coral_inference.shutdown()
    with pytest.raises(RuntimeError, match="closed"):
        model.session.run(np.zeros((1, 3, 64, 64), np.float32))


def test_auto_prefers_the_npu_when_the_package_has_an_rknn_artifact(package_dir, fake_board):  # noqa: F811
    fake_board.build_rknn(package_dir / "model.onnx", package_dir / "model.rknn")
    write_package(
        package_dir,
        classes=["cat", "dog"],
        input={"width": 64, "height": 64},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}, "rknn": {"file": "model.rknn"}},
    )
    context = coral_inference.init()
    model = context.get_model(str(package_dir))
    assert model.backend_name == "rknn" and model.session.concurrency == 3
    np.testing.assert_allclose(model.detect(np.zeros((64, 64, 3), np.uint8)).xyxy, BOXES)
    assert context.get_model(str(package_dir), backend="onnxruntime").backend_name == "onnxruntime"


def test_auto_skips_backends_without_an_artifact(package_dir, fake_board):  # noqa: F811
    context = (
        coral_inference.init()
    )  # rknn is available on the fake board, but the package has only ONNX
    assert context.get_model(str(package_dir)).backend_name == "onnxruntime"


def test_unknown_backend_is_named(package_dir):
    context = coral_inference.init()
    with pytest.raises(
        UnknownBackendError, match=r"unknown backend 'tensorflow'; registered: .*onnxruntime"
    ):
        context.get_model(str(package_dir), backend="tensorflow")


def test_unavailable_backend_says_why(package_dir):
    context = coral_inference.init()
    with pytest.raises(
        BackendUnavailableError,
        match=r"backend 'rknn' cannot run model 'test-model' here: rknn-toolkit-lite2 is not installed",
    ):
        context.get_model(str(package_dir), backend="rknn")


def test_backend_without_artifact_is_named(package_dir, fake_board):  # noqa: F811
    context = coral_inference.init()
    with pytest.raises(
        ArtifactNotFoundError, match=r"has no artifact for backend 'rknn'; it has: onnxruntime"
    ):
        context.get_model(str(package_dir), backend="rknn")


def test_auto_with_nothing_usable_lists_each_backend(package_dir):
    # Built-ins only: an installed third-party backend (the OpenVINO plugin) could run the ONNX artifact.
    context = coral_inference.init(
        {"backends": {"onnxruntime": {"enabled": False}}, "plugins": {"entry_points": False}}
    )
    with pytest.raises(BackendUnavailableError) as info:
        context.get_model(str(package_dir))
    message = str(info.value)
    assert message.startswith("no backend can run model 'test-model' (")
    assert "rknn: rknn-toolkit-lite2 is not installed" in message
    assert "onnxruntime: disabled in config (backends.onnxruntime.enabled: false)" in message


def test_missing_model_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    context = coral_inference.init()
    with pytest.raises(PackageNotFoundError, match=r"model package 'nope' not found"):
        context.get_model("nope")
