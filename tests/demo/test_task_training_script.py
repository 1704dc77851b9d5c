"""scripts/train_demo_tasks.py at toy scale: seeded, every layout exported, packages load."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_demo_tasks.py"
TOY = ["--steps", "2", "--batch", "2", "--size", "128", "--eval-images", "2"]


@pytest.fixture(scope="module")
def trainer():
    spec = importlib.util.spec_from_file_location("train_demo_tasks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # trains and exports four toy models (two per task): ~40 s on a free core
@pytest.mark.parametrize("task", ["seg", "pose"])
def test_same_seed_trains_to_identical_exports_in_both_layouts(trainer, tmp_path, task):
    records = []
    for run in ("a", "b"):
        assert trainer.main([task, *TOY, "--out", str(tmp_path / run)]) == 0
        records.append(json.loads((tmp_path / run / "training.json").read_text()))
    first, second = records
    assert (
        first["heads"].keys() == second["heads"].keys() == {f"yolov8_{task}", f"yolov8_{task}_dfl"}
    )
    for head in first["heads"]:
        assert first["heads"][head]["sha256"] == second["heads"][head]["sha256"], (
            f"{head} export is not reproducible"
        )
    cells = 16 * 16 + 8 * 8 + 4 * 4
    if task == "seg":
        assert first["heads"]["yolov8_seg"]["outputs"] == {
            "output0": [1, 4 + 3 + 8, cells],
            "output1": [1, 8, 32, 32],
        }
        assert len(first["heads"]["yolov8_seg_dfl"]["outputs"]) == 13
    else:
        assert first["heads"]["yolov8_pose"]["outputs"] == {"output0": [1, 4 + 3 + 5 * 3, cells]}
        assert first["heads"]["yolov8_pose_dfl"]["outputs"]["keypoints"] == [1, 5, 3, cells]
    from coral_inference.models import load_package

    package = load_package(tmp_path / "a")  # the written coral-model.yaml is a valid package
    assert package.manifest.task == first["task"] and package.head.type == f"yolov8_{task}"


@pytest.mark.slow  # see above
def test_classification_writes_the_single_and_the_multi_label_package(trainer, tmp_path):
    from coral_inference.models import load_package

    out = tmp_path / "coral-demo-cls"
    assert trainer.main(["cls", *TOY, "--out", str(out)]) == 0
    single, multi = load_package(out), load_package(tmp_path / "coral-demo-cls-multilabel")
    assert (single.manifest.multi_label, multi.manifest.multi_label) == (False, True)
    assert single.head.type == multi.head.type == "yolov8_cls"
    record = json.loads((out / "training.json").read_text())
    assert set(record["metrics"]) >= {"top1", "multilabel_exact_match"}


def test_input_size_must_be_a_multiple_of_32(trainer, capsys):
    with pytest.raises(SystemExit):
        trainer.main(["pose", "--size", "100"])
    assert "--size must be a multiple of 32, got 100" in capsys.readouterr().err
