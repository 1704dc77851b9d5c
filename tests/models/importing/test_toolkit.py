"""``coral-runtime models toolkit install`` builds rknn-toolkit2's own environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coral_inference.models.convert import toolkit_python
from coral_inference.models.toolkit import ToolkitInstallError, install_toolkit, toolkit_dir


def test_install_runs_the_steps_marks_completion_and_convert_finds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CORAL_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CORAL_RKNN_TOOLKIT_PYTHON", raising=False)
    ran = []

    def run(command):
        ran.append(list(command))
        if command[1:3] == ["-m", "venv"]:
            (tmp_path / "rknn-toolkit2-2.3.2" / "bin").mkdir(parents=True)
        return 0

    target = install_toolkit("2.3.2", python="/usr/bin/python3.11", run=run)
    assert target == toolkit_dir("2.3.2") == tmp_path / "rknn-toolkit2-2.3.2"
    assert ran[0] == ["/usr/bin/python3.11", "-m", "venv", str(target)]
    assert any("rknn-toolkit2==2.3.2" in c for c in ran[2]) and "onnx>=1.16.1,<1.17" in ran[2]
    assert ran[3][-1] == "from rknn.api import RKNN; RKNN().release()"
    assert toolkit_python() == target / "bin" / "python"
    # already there: nothing runs again
    assert install_toolkit("2.3.2", python="/usr/bin/python3.11", run=lambda c: 1) == target


def test_a_failed_step_is_named_and_leaves_no_completion_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("CORAL_CACHE_DIR", str(tmp_path))
    with pytest.raises(ToolkitInstallError, match="failed at 'install rknn-toolkit2==2.3.2"):
        install_toolkit(
            "2.3.2",
            python="/usr/bin/python3.11",
            run=lambda c: (
                1
                if "pip" in c and "install" in c and any(a.startswith("rknn-toolkit2==") for a in c)
                else 0
            ),
        )
    assert not (tmp_path / "rknn-toolkit2-2.3.2" / ".coral-complete").exists()


def test_cli_dry_run_prints_the_commands(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "coral_inference.cli.main",
            "models",
            "toolkit",
            "install",
            "--dry-run",
            "--json",
            "--python",
            "/usr/bin/python3.11",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "CORAL_CACHE_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["target"] == str(tmp_path / "rknn-toolkit2-2.3.2")
    assert answer["commands"][0][:3] == ["/usr/bin/python3.11", "-m", "venv"]
