"""scripts/train_demo_detector.py end to end at toy scale: seeded, both layouts exported."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_demo_detector.py"


@pytest.fixture(scope="module")
def trainer():
    spec = importlib.util.spec_from_file_location("train_demo_detector", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_same_seed_trains_to_identical_exports_in_both_layouts(trainer, tmp_path):
    toy = ["--steps", "6", "--batch", "4", "--size", "128", "--eval-images", "4"]
    records = []
    for run in ("a", "b"):
        assert trainer.main([*toy, "--out", str(tmp_path / run)]) == 0
        records.append(json.loads((tmp_path / run / "training.json").read_text()))
    first, second = records
    for head in ("yolov8", "yolov8_dfl"):
        assert first["heads"][head]["sha256"] == second["heads"][head]["sha256"], (
            f"{head} export is not reproducible"
        )
    assert first["heads"]["yolov8"]["outputs"] == {"output0": [1, 7, 16 * 16 + 8 * 8 + 4 * 4]}
    assert list(first["heads"]["yolov8_dfl"]["outputs"]) == [
        f"{kind}_{stride}" for stride in (8, 16, 32) for kind in ("box", "cls", "score_sum")
    ]
    assert first["heads"]["yolov8_dfl"]["outputs"]["box_16"] == [1, 64, 8, 8]
    assert first["metrics"]["map50"] == second["metrics"]["map50"]


def test_input_size_must_be_a_multiple_of_32(trainer, capsys):
    with pytest.raises(SystemExit):
        trainer.main(["--size", "100"])
    assert "--size must be a multiple of 32, got 100" in capsys.readouterr().err
