"""The bundled ``coral-demo`` package: its manifest, both head layouts, and the NPU input path.

The two ONNX exports come from the same weights, so Coral's yolov8 and yolov8_dfl
decoders must find the same boxes; a (fake) RKNN build of the nine-output export,
fed NHWC uint8 with the normalisation inside the model, must find them too.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.backends.rknn import RknnBackend
from coral_inference.models import load_package
from coral_inference.models.convert import normalisation_for_rknn
from coral_inference.models.detector import Detector
from coral_inference.models.validation import check_package
from tests.backends.rknn_double import fake_board  # noqa: F401  (fixture)

SEEDS = (5001, 5002, 5003, 5004)


@pytest.fixture(scope="module")
def demo():
    return load_package("coral-demo")


@pytest.fixture(scope="module")
def stills():
    from coral_inference.demo import random_still

    return [random_still(seed, 640, 480) for seed in SEEDS]


def _variant(demo, root, artifacts, head=None):
    """A copy of coral-demo with other artifacts (and head), for the other export layouts."""
    root.mkdir()
    manifest = yaml.safe_load(demo.manifest_path.read_text())
    for name in ("model_yolov8.onnx", "model_yolov8_dfl.onnx"):
        shutil.copy(demo.root / name, root / name)
    manifest["artifacts"] = artifacts
    manifest.pop("convert")
    if head:
        manifest["head"] = head
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest))
    return load_package(root)


def _same(a, b):
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=2e-3)
    assert a.class_id.tolist() == b.class_id.tolist()


def test_bundled_package_validates(demo):
    assert demo.classes == ["circle", "square", "triangle"]
    assert [c.status for c in check_package(demo)] == ["ok", "ok", "ok"]


def test_both_head_layouts_find_the_same_boxes(demo, stills, tmp_path):
    dfl = _variant(
        demo,
        tmp_path / "dfl",
        {"onnxruntime": {"file": "model_yolov8_dfl.onnx"}},
        head=demo.manifest.convert.rknn.head.model_dump(),
    )
    single = Detector(demo, OnnxRuntimeBackend().prepare_session(demo))
    nine = Detector(dfl, OnnxRuntimeBackend().prepare_session(dfl))
    try:
        for still in stills:
            _same(
                single.detect(still.image, confidence=0.4), nine.detect(still.image, confidence=0.4)
            )
    finally:
        single.close()
        nine.close()


def test_rknn_build_of_the_nine_output_export_matches_onnxruntime(
    demo,
    stills,
    tmp_path,
    fake_board,  # noqa: F811  (the fixture imported above)
):
    mean, std = normalisation_for_rknn(demo.input)
    assert (mean, std) == ([[0.0, 0.0, 0.0]], [[255.0, 255.0, 255.0]])
    fake_board.build_rknn(
        demo.root / "model_yolov8_dfl.onnx",
        tmp_path / "model.rknn",
        mean_values=mean,
        std_values=std,
    )
    npu = _variant(
        demo,
        tmp_path / "npu",
        {
            "onnxruntime": {"file": "model_yolov8.onnx"},
            "rknn": {
                "file": "model.rknn",
                "target_platform": "rk3588",
                "head": demo.manifest.convert.rknn.head.model_dump(),
            },
        },
    )
    shutil.copy(tmp_path / "model.rknn", npu.root / "model.rknn")
    on_npu = Detector(npu, RknnBackend().prepare_session(npu))
    on_cpu = Detector(npu, OnnxRuntimeBackend().prepare_session(npu))
    try:
        assert on_npu.input_spec.layout == "NHWC" and on_npu.input_spec.dtype == "uint8"
        npu_results = on_npu.detect_batch([s.image for s in stills], confidence=0.4)
        for still, result in zip(stills, npu_results):
            _same(result, on_cpu.detect(still.image, confidence=0.4))
    finally:
        on_npu.close()
        on_cpu.close()
    assert fake_board.board.input_dtypes == {"uint8"}
