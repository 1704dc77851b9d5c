"""Each static gate of scripts/check can fail: lint, format, types, layers, and the script itself.

The gates run over the repository in .ci/run; here each runs over a small, deliberately
broken input with the repository's own configuration, so a gate that silently passes
everything (a wrong path, an empty rule set, a contract that matches nothing) fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def _tool(name: str) -> Path:
    path = BIN / name
    assert path.exists(), f"{name} is not installed in {BIN}: run scripts/dev-env"
    return path


def test_ruff_check_uses_the_project_rule_set(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text(
        "import sys\nimport os\nfrom typing import Optional\n\n\n"
        "def f(x: Optional[int]) -> int:\n    return 1\n"
    )
    config = ROOT / "pyproject.toml"
    result = _run(
        _tool("ruff"),
        "check",
        "--config",
        config,
        "--output-format",
        "concise",
        source,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    for rule in ("F401", "I001", "UP045"):  # pyflakes, isort and pyupgrade are all on
        assert rule in result.stdout, result.stdout
    source.write_text("import os\n\nprint(os.sep)\n")
    assert _run(_tool("ruff"), "check", "--config", config, source, cwd=tmp_path).returncode == 0


def test_ruff_format_check_fails_on_unformatted_code(tmp_path):
    source = tmp_path / "ugly.py"
    source.write_text("x = {  'a':1 }\n")
    config = ROOT / "pyproject.toml"
    result = _run(_tool("ruff"), "format", "--check", "--config", config, source, cwd=tmp_path)
    assert result.returncode != 0 and "would be reformatted" in result.stdout
    source.write_text('x = {"a": 1}\n')
    assert (
        _run(
            _tool("ruff"), "format", "--check", "--config", config, source, cwd=tmp_path
        ).returncode
        == 0
    )


def test_basedpyright_reports_a_type_error_in_standard_mode(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "bad.py").write_text("def f() -> int:\n    return 'not an int'\n")
    (tmp_path / "pyrightconfig.json").write_text(
        '{"include": ["pkg"], "typeCheckingMode": "standard"}'
    )
    result = _run(_tool("basedpyright"), cwd=tmp_path)
    assert result.returncode != 0
    assert "reportReturnType" in result.stdout or "not assignable" in result.stdout, result.stdout
    (tmp_path / "pkg" / "bad.py").write_text("def f() -> int:\n    return 1\n")
    assert _run(_tool("basedpyright"), cwd=tmp_path).returncode == 0


def test_the_project_basedpyright_config_is_standard_mode_over_both_packages():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.basedpyright]", 1)[1].split("\n[", 1)[0]
    assert 'typeCheckingMode = "standard"' in section
    assert 'include = ["coral_inference", "coral_workflows"]' in section


def _copy_packages(dest: Path) -> None:
    for package in ("coral_inference", "coral_workflows"):
        shutil.copytree(
            ROOT / package,
            dest / package,
            ignore=shutil.ignore_patterns("*.pyc", "__pycache__", "zoo", "static"),
        )
    shutil.copy(ROOT / ".importlinter", dest / ".importlinter")


@pytest.mark.parametrize(
    ("importer", "line", "broken"),
    [
        # config (the bottom layer) reaching up into the web app
        ("coral_inference/config/template.py", "import coral_inference.webapp.app", "Coral layers"),
        # the package description reaching up into a backend
        (
            "coral_inference/models/package.py",
            "import coral_inference.backends.onnxruntime",
            "below the backends",
        ),
    ],
)
def test_lint_imports_fails_on_an_upward_import(tmp_path, importer, line, broken):
    _copy_packages(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    kept = _run(_tool("lint-imports"), "--no-cache", cwd=tmp_path, env=env)
    assert kept.returncode == 0, kept.stdout[-2000:]
    target = tmp_path / importer
    target.write_text(target.read_text() + f"\n{line}  # deliberate upward import\n")
    result = _run(_tool("lint-imports"), "--no-cache", cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout[-2000:]


def _fake_tools(directory: Path, failing: str | None) -> None:
    directory.mkdir()
    for name in ("ruff", "basedpyright", "lint-imports"):
        code = 1 if name == failing else 0
        tool = directory / name
        tool.write_text(f'#!/bin/sh\necho {name} "$@"\nexit {code}\n')
        tool.chmod(0o755)


@pytest.mark.parametrize("failing", ["ruff", "basedpyright", "lint-imports"])
def test_scripts_check_fails_when_any_gate_fails_and_still_runs_the_others(tmp_path, failing):
    _fake_tools(tmp_path / "bin", failing)
    env = {**os.environ, "CORAL_CHECK_BIN": str(tmp_path / "bin")}
    result = _run("bash", ROOT / "scripts" / "check", cwd=ROOT, env=env)
    assert result.returncode != 0
    assert "FAILED" in result.stdout
    for name in ("lint", "format", "types", "layers"):  # every gate ran
        assert f"== {name}: " in result.stdout


def test_scripts_check_passes_when_every_gate_passes(tmp_path):
    _fake_tools(tmp_path / "bin", None)
    env = {**os.environ, "CORAL_CHECK_BIN": str(tmp_path / "bin")}
    result = _run("bash", ROOT / "scripts" / "check", cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ruff check ." in result.stdout and "ruff format --check ." in result.stdout


def test_ci_runs_the_checks_before_the_tests():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index("bash scripts/check") < lines.index("bash scripts/test")


def test_the_layer_contract_is_written_down_in_the_architecture_doc():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert ".importlinter" in doc
    contract = (ROOT / ".importlinter").read_text()
    layers = contract.split("layers =", 1)[1].split("ignore_imports", 1)[0]
    for layer in (line.strip() for line in layers.strip().splitlines()):
        assert textwrap.shorten(layer, 200) in doc, (
            f"docs/architecture.md does not show layer {layer!r}"
        )
