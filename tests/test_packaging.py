"""A wheel built from the repository installs only coral_inference and coral_workflows."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # builds a real wheel with setuptools from a copy of the tree (10-30 s)
def test_the_wheel_installs_no_other_top_level_package(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    # A copy of what the build reads, plus the top-level folders that must not become packages.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("coral_inference", "coral_workflows", "blocks", "manifests", "examples"):
        shutil.copytree(
            ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    (source / "blocks" / "__init__.py").write_text("")  # even if it looked like a package
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("coral_inference-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level_txt = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        declared = set(archive.read(top_level_txt).decode().split())
    top = {name.split("/", 1)[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"coral_inference", "coral_workflows"}
    assert declared == {"coral_inference", "coral_workflows"}
