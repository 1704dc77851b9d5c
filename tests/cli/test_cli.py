"""The coral-runtime command line, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest


def coral(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "coral_inference.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_config_validate_accepts_a_good_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("services:\n  http:\n    port: 9300\n")
    out = coral("config", "validate", "-c", str(good))
    assert out.returncode == 0 and "valid" in out.stdout


def test_config_validate_names_path_value_and_source_of_each_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  http:\n    port: eighty\nbackends:\n  rknn:\n    pool_size: 0\n")
    out = coral("config", "validate", "-c", str(bad), env={"CORAL_PLATFORM": "quantum"})
    assert out.returncode == 2
    assert f"services.http.port = 'eighty' (from file {bad})" in out.stderr
    assert f"backends.rknn.pool_size = 0 (from file {bad})" in out.stderr
    assert "platform = 'quantum' (from env CORAL_PLATFORM)" in out.stderr


def test_config_init_writes_a_file_that_validates(tmp_path):
    path = tmp_path / "coral.yaml"
    assert coral("config", "init", "-o", str(path)).returncode == 0
    assert path.read_text().startswith("# Coral runtime configuration")
    assert coral("config", "init", "-o", str(path)).returncode == 1  # no silent overwrite
    assert coral("config", "validate", "-c", str(path), "--no-env").returncode == 0


def test_config_show_reports_the_source_of_each_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("platform: jetson\n")
    out = coral(
        "config",
        "show",
        "-c",
        str(path),
        "--json",
        "--set",
        "services.http.port=9400",
        env={"CORAL_SERVICES__HTTP__HOST": "0.0.0.0"},
    )
    shown = json.loads(out.stdout)
    assert shown["platform"] == {"value": "jetson", "source": f"file {path}"}
    assert shown["services.http.port"] == {"value": 9400, "source": "--set services.http.port=9400"}
    assert shown["services.http.host"] == {
        "value": "0.0.0.0",
        "source": "env CORAL_SERVICES__HTTP__HOST",
    }
    assert shown["services.pipelines.max_pipelines"]["source"] == "default"


def test_init_json_describes_platform_inference_backends_and_patches(require_inference):
    out = coral("init", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert (
        d["inference"]["version"] == str(require_inference.version) and d["inference"]["supported"]
    )
    assert d["platform"]["kind"] == "cpu"
    assert {"onnxruntime", "rknn"} <= {b["name"] for b in d["backends"]}
    for backend in d["backends"]:
        assert {"available", "reason", "origin"} <= set(backend)
    for patch in d["patches"]:
        assert {"state", "reason"} <= set(patch)


@pytest.mark.slow
def test_plugins_list_json_includes_blocks_backends_patches(require_inference):
    out = coral("plugins", "list", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["inference"]["version"] == str(require_inference.version)
    assert {b["name"] for b in d["backends"]} >= {"onnxruntime", "rknn"}
    plugin = d["workflow_plugins"][0]
    assert plugin["module"] == "coral_workflows" and plugin["distribution"] == "coral-inference"
    assert "error" not in plugin, plugin.get("error")
    assert plugin["blocks"] and all(
        b["type"].startswith("coral/") and b["version"] for b in plugin["blocks"]
    )
    assert isinstance(d["web_plugins"], list)


def test_doctor_json_lists_checks_with_fixes():
    out = coral("doctor", "--json", env={"WORKFLOWS_PLUGINS": ""})
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["backend onnxruntime"]["status"] == "ok"
    assert checks["WORKFLOWS_PLUGINS"]["status"] == "warn"
    assert (
        checks["WORKFLOWS_PLUGINS"]["fix"] == "export WORKFLOWS_PLUGINS=coral_workflows (no spaces)"
    )
