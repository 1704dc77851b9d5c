"""RKNN adapter against the RKNNLite test double: outputs, every failure, the core pool, release."""

from __future__ import annotations

import re
import sys
import threading

import numpy as np
import pytest

from coral_inference.backends.base import BackendUnavailableError
from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.backends.rknn import (
    RknnBackend,
    RknnDeviceError,
    RknnError,
    RknnInferenceError,
    RknnLoadError,
    RknnPlatformMismatchError,
    RknnRuntimeMissingError,
)
from coral_inference.models import load_package
from coral_inference.models.detector import Detector
from tests.backends.rknn_double import fake_board  # noqa: F401  (fixture)
from tests.models.builders import (
    constant_model,
    conv_model,
    encode_yolov8,
    encode_yolov8_dfl,
    write_package,
)


@pytest.fixture
def conv_package(tmp_path, fake_board):  # noqa: F811
    """Both artifacts of one convolutional model: ONNX (NCHW float /255) and its fake .rknn."""
    root = tmp_path / "pkg"
    root.mkdir()
    conv_model(root / "model.onnx", channels_out=7, size=64)
    fake_board.build_rknn(
        root / "model.onnx",
        root / "model.rknn",
        target_platform="rk3588",
        mean_values=[[0, 0, 0]],
        std_values=[[255, 255, 255]],
    )
    write_package(
        root,
        classes=["a", "b", "c"],
        input={"width": 64, "height": 64},
        head={"type": "yolov8", "strides": [8]},
        artifacts={
            "onnxruntime": {"file": "model.onnx"},
            "rknn": {"file": "model.rknn", "target_platform": "rk3588"},
        },
    )
    return load_package(root)


def _frame(seed=1, shape=(48, 80, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_rknn_outputs_match_onnxruntime_on_the_same_frame(conv_package, fake_board):  # noqa: F811
    rknn, ort = RknnBackend(), OnnxRuntimeBackend()
    frame = _frame()
    pool = rknn.prepare_session(conv_package)
    try:
        tensor = rknn.preprocess(frame, conv_package)
        assert tensor.dtype == np.uint8 and tensor.shape == (1, 64, 64, 3)  # NHWC uint8 RGB
        npu = pool.run(tensor)
    finally:
        pool.close()
    cpu = ort.prepare_session(conv_package).run(ort.preprocess(frame, conv_package))
    assert fake_board.board.input_dtypes == {"uint8"}
    assert len(npu) == len(cpu) == 1
    np.testing.assert_allclose(npu[0], cpu[0], rtol=1e-4, atol=1e-4)


def test_rknn_and_onnxruntime_give_the_same_detections(tmp_path, fake_board):  # noqa: F811
    root = tmp_path / "const"
    boxes = np.array([[10, 12, 40, 30], [5, 40, 20, 60]], np.float32)
    constant_model(
        root / "model.onnx", [encode_yolov8(boxes, np.array([0, 1]), np.array([0.9, 0.7]), 2, 84)]
    )
    fake_board.build_rknn(root / "model.onnx", root / "model.rknn")
    write_package(
        root,
        classes=["x", "y"],
        input={"width": 64, "height": 64},
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}, "rknn": {"file": "model.rknn"}},
    )
    package = load_package(root)
    frame = _frame(shape=(128, 128, 3))
    on_npu = Detector(package, RknnBackend().prepare_session(package))
    on_cpu = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    try:
        a, b = on_npu.detect(frame), on_cpu.detect(frame)
    finally:
        on_npu.close()
        on_cpu.close()
    np.testing.assert_allclose(a.xyxy, b.xyxy)
    np.testing.assert_allclose(a.xyxy, boxes * 2)
    assert a.data["class_name"].tolist() == ["x", "y"]


def test_rknn_artifact_with_its_own_head_decodes_like_the_onnx_one(tmp_path, fake_board):  # noqa: F811
    """One package: ONNX with the single-output head, .rknn built from the nine-output export."""
    root = tmp_path / "heads"
    boxes, ids, scores = (
        np.array([[10, 12, 40, 30], [60, 70, 120, 120]], np.float32),
        np.array([0, 1]),
        np.array([0.9, 0.7]),
    )
    constant_model(
        root / "single.onnx",
        [encode_yolov8(boxes, ids, scores, 2, 336)],
        input_shape=(1, 3, 128, 128),
    )
    constant_model(
        root / "dfl.onnx",
        encode_yolov8_dfl(boxes, ids, scores, 2, (128, 128)),
        input_shape=(1, 3, 128, 128),
    )
    fake_board.build_rknn(root / "dfl.onnx", root / "model.rknn")
    write_package(
        root,
        classes=["x", "y"],
        input={"width": 128, "height": 128},
        head={"type": "yolov8"},
        artifacts={
            "onnxruntime": {"file": "single.onnx"},
            "rknn": {"file": "model.rknn", "head": {"type": "yolov8_dfl"}},
        },
    )
    package = load_package(root)
    assert (
        package.head_for("rknn").type == "yolov8_dfl"
        and package.head_for("onnxruntime").type == "yolov8"
    )
    on_npu = Detector(package, RknnBackend().prepare_session(package))
    on_cpu = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    try:
        a, b = (
            on_npu.detect(_frame(shape=(128, 128, 3))),
            on_cpu.detect(_frame(shape=(128, 128, 3))),
        )
    finally:
        on_npu.close()
        on_cpu.close()
    np.testing.assert_allclose(a.xyxy, boxes, atol=1e-3)
    np.testing.assert_allclose(b.xyxy, boxes, atol=1e-3)


def test_pool_uses_one_session_per_npu_core_concurrently(conv_package, fake_board):  # noqa: F811
    backend = RknnBackend()
    assert backend.core_masks() == [1, 2, 4]
    pool = backend.prepare_session(conv_package)
    detector = Detector(conv_package, pool)
    # Each inference waits until three are in flight: the batch only completes if all
    # three cores run at once (a serial pool would break the barrier after its timeout).
    fake_board.board.rendezvous = threading.Barrier(3, timeout=20)
    try:
        results = detector.detect_batch([_frame(seed) for seed in range(6)], confidence=0.99)
    finally:
        detector.close()
    assert len(results) == 6
    assert fake_board.board.max_masks_in_flight == {1, 2, 4}
    assert sorted(set(fake_board.board.masks_used)) == [1, 2, 4]
    assert fake_board.board.violations == []  # no RKNNLite was used by two threads at once


def test_close_releases_every_session_once(conv_package, fake_board):  # noqa: F811
    pool = RknnBackend().prepare_session(conv_package)
    instances = list(fake_board.board.instances)
    assert len(instances) == 3 and not any(i.released for i in instances)
    pool.close()
    pool.close()
    assert all(i.released for i in instances)
    with pytest.raises(RuntimeError, match="closed"):
        pool.run(np.zeros((1, 64, 64, 3), np.uint8))


@pytest.mark.parametrize(
    ("soc", "pool_size", "core_mask", "expected"),
    [
        ("rk3588", 3, "auto", [1, 2, 4]),
        ("rk3588", 5, "auto", [1, 2, 4, 1, 2]),
        ("rk3588", 1, "0_1_2", [7]),
        ("rk3576", 3, "auto", [1, 2, 1]),
        ("rk3566", 3, "auto", [0]),
    ],
)
def test_core_masks_follow_the_soc_and_config(fake_board, soc, pool_size, core_mask, expected):  # noqa: F811
    fake_board.set_soc(soc)
    assert RknnBackend({"pool_size": pool_size, "core_mask": core_mask}).core_masks() == expected


def test_missing_runtime_library_is_named(conv_package, fake_board):  # noqa: F811
    fake_board.remove_library()
    with pytest.raises(RknnRuntimeMissingError) as info:
        RknnBackend().prepare_session(conv_package)
    assert re.match(
        r"rknn: init_runtime returned -1 for model 'test-model' \(.*model\.rknn, core mask 1\): "
        r"librknnrt\.so not found; install the Rockchip NPU runtime",
        str(info.value),
    )
    assert "librknnrt.so not found" in RknnBackend().probe().reason


def test_missing_npu_device_is_named(conv_package, fake_board):  # noqa: F811
    fake_board.remove_device()
    with pytest.raises(
        RknnDeviceError,
        match=r"no NPU device node \(/dev/rknpu, /dev/dri/renderD129\); "
        r"the rknpu kernel driver is not loaded",
    ):
        RknnBackend().prepare_session(conv_package)
    assert not RknnBackend().probe().available


def test_wrong_target_platform_is_named(conv_package, fake_board):  # noqa: F811
    fake_board.set_soc("rk3576")
    with pytest.raises(
        RknnPlatformMismatchError,
        match=r"the model was built for rk3588 but this board is rk3576 "
        r".*coral-runtime models convert --target rk3576",
    ):
        RknnBackend().prepare_session(conv_package)


def test_corrupt_rknn_file_is_refused_by_load_rknn(tmp_path, fake_board):  # noqa: F811
    root = tmp_path / "corrupt"
    root.mkdir()
    (root / "model.rknn").write_bytes(
        b"not an rknn model"
    )  # sha256 in the manifest matches: load_rknn judges
    write_package(
        root,
        classes=["a"],
        input={"width": 64, "height": 64},
        head={"type": "yolov8"},
        artifacts={"rknn": {"file": "model.rknn"}},
    )
    with pytest.raises(
        RknnLoadError,
        match=r"load_rknn returned -1 for model 'test-model' .*not a valid \.rknn file",
    ):
        RknnBackend().prepare_session(load_package(root))


def test_inference_returning_none_raises_with_the_model_and_input(conv_package, fake_board):  # noqa: F811
    pool = RknnBackend().prepare_session(conv_package)
    fake_board.board.fail_inference = True
    try:
        with pytest.raises(
            RknnInferenceError,
            match=r"inference returned None for model 'test-model' "
            r"\(core mask 1, input \[1, 64, 64, 3\] uint8 nhwc\)",
        ):
            pool.run(np.zeros((1, 64, 64, 3), np.uint8))
    finally:
        pool.close()


def test_a_failing_session_releases_the_ones_already_started(conv_package, fake_board, monkeypatch):  # noqa: F811
    original = fake_board.api.RKNNLite.init_runtime
    calls = []

    def third_core_fails(self, *args, core_mask=0, **kwargs):
        calls.append(core_mask)
        return -1 if core_mask == 4 else original(self, *args, core_mask=core_mask, **kwargs)

    monkeypatch.setattr(fake_board.api.RKNNLite, "init_runtime", third_core_fails)
    with pytest.raises(RknnError, match=r"core mask 4\): the runtime refused to start"):
        RknnBackend().prepare_session(conv_package)
    assert calls == [1, 2, 4]
    assert all(i.released for i in fake_board.board.instances)


def test_without_rknnlite_the_backend_is_unavailable_and_says_how_to_install(conv_package):
    # Its own MonkeyPatch: undone before fake_board's teardown, which would otherwise
    # see the double put back into sys.modules by the shared fixture's undo.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(
            sys.modules, "rknnlite", None
        )  # import fails as on a machine without the wheel
        patch.setitem(sys.modules, "rknnlite.api", None)
        with pytest.raises(
            BackendUnavailableError, match=r"install rknn-toolkit-lite2 on the board"
        ):
            RknnBackend().prepare_session(conv_package)


def test_probe_reports_the_fake_board(fake_board):  # noqa: F811
    probe = RknnBackend().probe()
    assert probe.available
    assert probe.details["soc"] == "rk3588" and probe.details["device"] == "/dev/rknpu"
