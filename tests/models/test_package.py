"""Model package loading: valid manifests, and each bad input failing with a pinned message."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from coral_inference.models import (
    ArtifactNotFoundError,
    ChecksumMismatchError,
    ManifestError,
    ModelLoadError,
    PackageNotFoundError,
    load_package,
)
from coral_inference.models.artifacts import ensure_artifact
from coral_inference.models.package import InputOverride
from tests.models.builders import constant_model, encode_yolov8, write_package

INPUT = {"width": 64, "height": 64}


@pytest.fixture
def package_dir(tmp_path):
    root = tmp_path / "pkg"
    out = encode_yolov8(
        np.array([[8, 8, 24, 24]], np.float32), np.array([0]), np.array([0.9]), 2, 16
    )
    constant_model(root / "model.onnx", [out])
    return write_package(
        root,
        classes=["cat", "dog"],
        input=dict(INPUT),
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}},
    )


def _edit(root, change):
    manifest = root / "coral-model.yaml"
    data = yaml.safe_load(manifest.read_text())
    change(data)
    manifest.write_text(yaml.safe_dump(data))
    return manifest


def test_a_valid_package_loads_with_defaults(package_dir):
    package = load_package(package_dir)
    assert package.name == "test-model" and package.classes == ["cat", "dog"]
    assert (
        package.input.layout,
        package.input.color,
        package.input.dtype,
        package.input.resize,
    ) == ("NCHW", "RGB", "float32", "letterbox")
    assert package.input.pad_value == 114 and package.input.scale == pytest.approx(1 / 255)
    assert package.backends == ["onnxruntime"]
    assert (
        load_package(package_dir / "coral-model.yaml").root == package.root
    )  # the manifest path works too


def test_artifact_input_overrides_apply_per_backend(package_dir):
    _edit(
        package_dir,
        lambda d: d["artifacts"].update(
            {"rknn": {"file": "model.onnx", "input": {"layout": "NHWC"}}}
        ),
    )
    package = load_package(package_dir)
    rknn = package.input_for("rknn", InputOverride(layout="NCHW", dtype="uint8"))
    assert (rknn.layout, rknn.dtype) == ("NHWC", "uint8")  # artifact override beats backend default
    assert package.input_for("onnxruntime").layout == "NCHW"


def test_missing_package_names_what_was_searched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PackageNotFoundError) as info:
        load_package("no-such-model")
    assert re.match(
        r"model package 'no-such-model' not found: no such directory \(relative to .*\) and no bundled "
        r"package of that name \(bundled: .*\); give a package directory, a bundled name or a name from "
        r"the config's models section$",
        str(info.value),
    )


def test_directory_without_manifest_is_not_a_package(tmp_path):
    with pytest.raises(
        PackageNotFoundError,
        match=r"directory has no coral-model\.yaml; a model package is a directory",
    ):
        load_package(tmp_path)


def test_manifest_with_a_wrong_field_names_file_field_and_value(package_dir):
    manifest = _edit(package_dir, lambda d: d["input"].update(layout="NCWH"))
    with pytest.raises(ManifestError) as info:
        load_package(package_dir)
    assert (
        str(info.value)
        == f"{manifest}: input.layout: Input should be 'NCHW' or 'NHWC' (got 'NCWH')"
    )


def test_manifest_problems_are_all_reported(package_dir):
    def change(d):
        d["head"]["type"] = "yolov9"
        d["classes"] = ["cat", "cat"]
        d["input"]["colour"] = "RGB"
        del d["input"]["width"]

    _edit(package_dir, change)
    with pytest.raises(ManifestError) as info:
        load_package(package_dir)
    problems = info.value.problems
    assert "input.width: required field is missing" in problems
    assert "input.colour: unknown field (check the spelling; see docs/models.md)" in problems
    assert any(p.startswith("head.type: Input should be 'yolov8', 'yolov8_dfl'") for p in problems)
    assert any(
        p.startswith("classes: class names must be unique; repeated: ['cat']") for p in problems
    )


def test_artifact_outside_the_package_is_refused(package_dir):
    _edit(
        package_dir,
        lambda d: d["artifacts"]["onnxruntime"].update(file="../../etc/passwd", sha256=None),
    )
    with pytest.raises(
        ManifestError,
        match=r"artifacts\.onnxruntime\.file: '\.\./\.\./etc/passwd' points outside the package",
    ):
        load_package(package_dir)


def test_url_artifact_requires_a_sha256(package_dir):
    _edit(package_dir, lambda d: d["artifacts"].update(rknn={"url": "https://example.org/m.rknn"}))
    with pytest.raises(
        ManifestError,
        match=r"artifacts\.rknn: an artifact fetched from https://example\.org/m\.rknn needs a sha256",
    ):
        load_package(package_dir)


def test_not_yaml_is_reported(package_dir):
    (package_dir / "coral-model.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match=r"coral-model\.yaml: not valid YAML"):
        load_package(package_dir)


def test_checksum_mismatch_names_file_expected_and_actual(package_dir):
    package = load_package(package_dir)
    (package_dir / "model.onnx").write_bytes(
        (package_dir / "model.onnx").read_bytes() + b"tampered"
    )
    with pytest.raises(ChecksumMismatchError) as info:
        ensure_artifact(package, "onnxruntime")
    expected = package.artifact("onnxruntime").sha256
    assert re.match(
        rf"{re.escape(str(package_dir / 'model.onnx'))}: sha256 mismatch: expected {expected} "
        rf"\(artifacts\.onnxruntime\.sha256 in .*coral-model\.yaml\), got [0-9a-f]{{64}}; the file is corrupt "
        r"or the manifest is stale",
        str(info.value),
    )


def test_missing_artifact_file_is_named(package_dir):
    package = load_package(package_dir)
    (package_dir / "model.onnx").unlink()
    with pytest.raises(
        ArtifactNotFoundError,
        match=r"model\.onnx: artifact file named by artifacts\.onnxruntime\.file",
    ):
        ensure_artifact(package, "onnxruntime")


def test_no_artifact_for_a_backend_lists_the_ones_there_are(package_dir):
    with pytest.raises(
        ArtifactNotFoundError,
        match=r"model package 'test-model' \(.*\) has no artifact for backend "
        r"'rknn'; it has: onnxruntime\.",
    ):
        load_package(package_dir).artifact("rknn")


def test_corrupt_onnx_is_a_model_load_error(tmp_path):
    root = tmp_path / "corrupt"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"\x08\x07garbage, not a protobuf")
    write_package(
        root,
        classes=["a"],
        input=dict(INPUT),
        head={"type": "yolov8"},
        artifacts={"onnxruntime": {"file": "model.onnx"}},
    )
    from coral_inference.backends.onnxruntime import OnnxRuntimeBackend

    with pytest.raises(ModelLoadError) as info:
        OnnxRuntimeBackend().prepare_session(load_package(root))
    assert re.match(
        r"onnxruntime cannot load model 'test-model' from .*model\.onnx: \w+: .*; the file is not a valid ONNX "
        r"model for this runtime \(corrupt or truncated download",
        str(info.value),
    )
