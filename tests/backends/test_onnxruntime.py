"""ONNX Runtime adapter: providers from config, what the session really got, threads, inputs."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from coral_inference.backends.base import BackendAdapter, BackendUnavailableError
from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.models import load_package
from tests.models.builders import constant_model, conv_model, encode_yolov8, write_package


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "pkg"
    conv_model(root / "model.onnx", channels_out=6, size=32)
    write_package(
        root,
        classes=["a", "b"],
        input={"width": 32, "height": 32},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}},
    )
    return load_package(root)


def test_adapter_meets_the_protocol():
    assert isinstance(OnnxRuntimeBackend(), BackendAdapter)


def test_session_runs_and_reports_its_providers(package):
    session = OnnxRuntimeBackend().prepare_session(package)
    outputs = session.run(OnnxRuntimeBackend().preprocess(np.zeros((20, 30, 3), np.uint8), package))
    assert [o.shape for o in outputs] == [(1, 6, 16)]
    assert session.providers == ["CPUExecutionProvider"]
    assert session.describe()["input"] == {"name": "images", "shape": [1, 3, 32, 32]}
    session.close()
    with pytest.raises(RuntimeError, match="closed"):
        session.run(np.zeros((1, 3, 32, 32), np.float32))


def test_requested_accelerator_missing_from_the_build_falls_back_to_cpu_with_a_warning(
    package, caplog, monkeypatch
):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    backend = OnnxRuntimeBackend({"providers": ["cuda", "cpu"]})
    probe = backend.probe()
    assert probe.available and probe.details["missing"] == ["CUDAExecutionProvider"]
    assert "CUDAExecutionProvider requested but not in this build" in probe.reason
    with caplog.at_level(logging.WARNING, logger="coral_inference.backends.onnxruntime"):
        session = backend.prepare_session(package)
    assert session.providers == ["CPUExecutionProvider"]
    assert (
        "provider CUDAExecutionProvider requested for model 'test-model' is not in this onnxruntime build"
        in caplog.text
    )


def test_accelerator_that_fails_to_initialise_is_reported(package, caplog, monkeypatch):
    """The build lists CUDA but the session ends up on CPU (no driver): warn with what it really got."""
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    real_session = onnxruntime.InferenceSession

    def cpu_only(path, sess_options=None, providers=None):
        assert providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return real_session(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(onnxruntime, "InferenceSession", cpu_only)
    with caplog.at_level(logging.WARNING, logger="coral_inference.backends.onnxruntime"):
        session = OnnxRuntimeBackend({"providers": ["cuda"]}).prepare_session(package)
    assert session.requested_providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert session.providers == ["CPUExecutionProvider"]
    assert (
        "asked for CUDAExecutionProvider but the session runs on CPUExecutionProvider"
        in caplog.text
    )


def test_thread_settings_reach_the_session(package, monkeypatch):
    import onnxruntime

    def spin_entry(options) -> str | None:
        try:
            return options.get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:  # "does not have configuration with key": never set
            return None

    seen = {}
    real_session = onnxruntime.InferenceSession

    def spy(path, sess_options=None, providers=None):
        seen.update(
            intra=sess_options.intra_op_num_threads,
            inter=sess_options.inter_op_num_threads,
            level=sess_options.graph_optimization_level,
            spinning=spin_entry(sess_options),
        )
        return real_session(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    OnnxRuntimeBackend(
        {
            "intra_op_num_threads": 2,
            "inter_op_num_threads": 1,
            "graph_optimization": "basic",
            "allow_spinning": False,
        }
    ).prepare_session(package)
    assert seen == {
        "intra": 2,
        "inter": 1,
        "level": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "spinning": "0",
    }
    OnnxRuntimeBackend().prepare_session(package)
    assert seen["spinning"] is None  # not set: ONNX Runtime's own default


def test_per_session_options_are_validated(package):
    with pytest.raises(ValueError, match="intra_op_num_threads"):
        OnnxRuntimeBackend().prepare_session(package, {"intra_op_num_threads": -1})


def test_disabled_backend_refuses_to_load(package):
    with pytest.raises(
        BackendUnavailableError,
        match=r"onnxruntime cannot run model 'test-model': disabled in config",
    ):
        OnnxRuntimeBackend({"enabled": False}).prepare_session(package)


def test_models_with_two_inputs_are_refused(tmp_path):
    from onnx import TensorProto, helper

    from tests.models.builders import _save

    root = tmp_path / "two"
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 8, 8]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 8, 8]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    _save(graph, root / "model.onnx")
    write_package(
        root,
        classes=["a"],
        input={"width": 8, "height": 8},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}},
    )
    with pytest.raises(
        BackendUnavailableError,
        match=r"has 2 inputs \(a, b\); Coral feeds detectors with exactly one image input",
    ):
        OnnxRuntimeBackend().prepare_session(load_package(root))


def test_download_artifacts_copies_the_verified_file(package, tmp_path):
    files = OnnxRuntimeBackend().download_artifacts(package, tmp_path / "out")
    assert [f.name for f in files] == ["model.onnx"]
    assert files[0].read_bytes() == (package.root / "model.onnx").read_bytes()
    assert OnnxRuntimeBackend().list_artifacts(package)[0].file == "model.onnx"


def test_uint8_nhwc_artifact_input_is_fed_as_declared(tmp_path):
    root = tmp_path / "u8"
    out = encode_yolov8(np.array([[1, 1, 5, 5]], np.float32), np.array([0]), np.array([0.9]), 1, 6)
    constant_model(
        root / "model.onnx", [out], input_shape=(1, 16, 16, 3), input_dtype=2
    )  # TensorProto.UINT8
    write_package(
        root,
        classes=["a"],
        input={"width": 16, "height": 16},
        head={"type": "yolov8"},
        artifacts={
            "onnxruntime": {"file": "model.onnx", "input": {"layout": "NHWC", "dtype": "uint8"}}
        },
    )
    package = load_package(root)
    backend = OnnxRuntimeBackend()
    tensor = backend.preprocess(np.zeros((16, 16, 3), np.uint8), package)
    assert tensor.dtype == np.uint8 and tensor.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(backend.prepare_session(package).run(tensor)[0], out)
