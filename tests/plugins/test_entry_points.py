"""Third-party backends and patches arrive through entry points of an installed distribution."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "coral_example_plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The example plugin really installed (pip, into a target directory)."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    source = build / "src"
    shutil.copytree(FIXTURE, source)  # setuptools builds in-tree; keep the repository clean
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        cwd=build,
        env={**os.environ, "PIP_NO_CACHE_DIR": "1"},
    )
    assert list(target.glob("coral_example_plugin-0.3.0.dist-info"))
    return target


def coral(plugin_site, *args):
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    return subprocess.run(
        [sys.executable, "-m", "coral_inference.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_third_party_backend_and_patch_are_discovered_and_applied(plugin_site, require_inference):
    out = coral(
        plugin_site,
        "init",
        "--json",
        "--no-env",
        "--set",
        "patches.example_patch=true",
        "--set",
        "backends.options.example.speed=fast",
    )
    assert out.returncode == 0, out.stderr
    described = json.loads(out.stdout)
    backends = {b["name"]: b for b in described["backends"]}
    assert backends["example"]["available"] is True
    assert backends["example"]["reason"] == "example backend with options {'speed': 'fast'}"
    assert "coral-example-plugin 0.3.0" in backends["example"]["origin"]
    # A plugin that fails to import is reported, not fatal.
    assert backends["broken"]["available"] is False
    assert "No module named 'a_module_that_does_not_exist'" in backends["broken"]["reason"]
    patches = {p["name"]: p for p in described["patches"]}
    assert patches["example_patch"]["state"] == "enabled"
    assert "coral-example-plugin 0.3.0" in patches["example_patch"]["origin"]


def test_plugin_entry_points_can_be_skipped_by_name(plugin_site):
    out = coral(plugin_site, "init", "--json", "--no-env", "--set", "plugins.disabled=[broken]")
    names = [b["name"] for b in json.loads(out.stdout)["backends"]]
    assert "broken" not in names and "example" in names


def test_the_patch_really_changes_and_restores_the_target(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    import importlib

    import coral_inference

    plugin = importlib.import_module("coral_example_plugin")
    context = coral_inference.init({"patches": {"example_patch": True}})
    assert context.is_patch_enabled("example_patch") and plugin.GREETING == "hello from coral"
    coral_inference.shutdown()
    assert plugin.GREETING == "hello"
