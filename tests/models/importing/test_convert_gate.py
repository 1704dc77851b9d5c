"""The accuracy gate of ``models convert``: a build whose detections drift from the ONNX model's is
refused with the parity report; a faithful one is added with the report next to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest
import yaml

from coral_inference.models.convert import (
    ConversionError,
    GateRefusedError,
    convert_with_gate,
    plan_rknn_build,
)
from coral_inference.models.importing import import_model
from coral_inference.models.package import load_package
from tests.models.importing.converter_standin import StandInConverter
from tests.models.importing.ultra_support import DETECT_FIXTURES, frames

CONFIDENCE = 0.15


def _frames():
    base = frames()
    return base + [cv2.flip(f, 1) for f in base] + [cv2.flip(f, 0) for f in base]


@pytest.fixture
def package(tmp_path):
    return import_model(DETECT_FIXTURES / "yolov8n.onnx", out=tmp_path / "pkg").package


def test_faithful_build_passes_and_joins_the_package_with_its_report(package):
    plan = plan_rknn_build(package)
    result = convert_with_gate(
        package,
        plan,
        frames=_frames(),
        converter=StandInConverter(0.0),
        held_out_every=1,
        confidence=CONFIDENCE,
    )
    report = result.report
    assert report.passed and report.agreement == 1.0 and report.reference_detections > 0
    assert report.cosine and min(report.cosine) > 0.9999
    reloaded = load_package(package.root)
    assert reloaded.artifact("rknn").file == "model_rk3588.rknn"
    conversion = reloaded.manifest.metadata["conversions"]["rknn"]
    assert conversion["passed"] is True and conversion["forced"] is False
    assert json.loads(result.report_path.read_text())["agreement"] == 1.0
    assert result.report_path.parent == result.rknn.parent


def test_degraded_build_is_refused_with_the_report(package):
    plan = plan_rknn_build(package)
    with pytest.raises(
        GateRefusedError,
        match=r"box mAP@0.5 \(box_map50\) 0\.\d+ is under its gate 0.95.*--gate box_map50=VALUE.*--force",
    ) as info:
        convert_with_gate(
            package,
            plan,
            frames=_frames(),
            converter=StandInConverter(1.0),
            held_out_every=1,
            confidence=CONFIDENCE,
        )
    report = info.value.report
    assert report.agreement < 0.95 and not report.passed and report.differences
    assert {d["kind"] for d in report.differences} <= {
        "missed by the conversion",
        "extra in the conversion",
    }
    assert "rknn" not in load_package(package.root).backends
    assert info.value.report_path.is_file()
    assert (package.root / "model_rk3588.rknn.rejected").is_file() and not (
        package.root / "model_rk3588.rknn"
    ).exists()


def test_force_adds_a_degraded_build_and_records_it(package):
    plan = plan_rknn_build(package)
    result = convert_with_gate(
        package,
        plan,
        frames=_frames(),
        converter=StandInConverter(1.0),
        held_out_every=1,
        confidence=CONFIDENCE,
        force=True,
    )
    assert result.report.forced and not result.report.passed
    conversion = load_package(package.root).manifest.metadata["conversions"]["rknn"]
    assert conversion["forced"] is True and conversion["metrics"]["box_map50"] < 0.95


def test_int8_of_the_single_output_head_points_to_split_head(package, tmp_path):
    with pytest.raises(ConversionError, match="--split-head"):
        plan_rknn_build(package, quantize=True, dataset=tmp_path)
    with pytest.raises(ConversionError, match="--calibration DIR\\|VIDEO"):
        plan_rknn_build(package, quantize=True)


def _coral(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "coral_inference.cli.main", "models", *args, "--no-env"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", "DISABLE_VERSION_CHECK": "True", **env},
    )


@pytest.mark.slow  # three CLI subprocesses (convert refused, convert accepted, inspect)
def test_cli_refuses_under_the_gate_and_inspect_shows_a_passing_report(package, tmp_path):
    calibration = tmp_path / "frames"
    calibration.mkdir()
    for i, frame in enumerate(_frames() * 2):
        cv2.imwrite(str(calibration / f"f{i:02d}.png"), frame)
    stand_in = "tests.models.importing.converter_standin:"
    refused = _coral(
        "convert",
        str(package.root),
        "--calibration",
        str(calibration),
        "--confidence",
        str(CONFIDENCE),
        "--json",
        env={"CORAL_RKNN_CONVERTER": stand_in + "degraded"},
    )
    assert refused.returncode == 1, refused.stderr
    answer = json.loads(refused.stdout)
    assert (
        answer["refused"] is True
        and answer["report"]["agreement"] < 0.95
        and answer["report"]["differences"]
    )
    accepted = _coral(
        "convert",
        str(package.root),
        "--calibration",
        str(calibration),
        "--confidence",
        str(CONFIDENCE),
        env={"CORAL_RKNN_CONVERTER": stand_in + "faithful"},
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "box mAP@0.5 1.000 (gate 0.95) pass" in accepted.stdout and "added" in accepted.stdout
    inspected = _coral("inspect", str(package.root), env={})
    assert "parity of rknn (rk3588, fp16): box_map50 1.0 vs gate 0.95" in inspected.stdout
    manifest = yaml.safe_load((package.root / "coral-model.yaml").read_text())
    assert manifest["artifacts"]["rknn"]["input"] == {"layout": "NHWC", "dtype": "uint8"}
