"""``coral-runtime plugins list``, ``doctor`` and ``config validate`` with the pilot installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

from typer.testing import CliRunner


def coral(*args: str) -> SimpleNamespace:
    """The CLI in this process (the console script's code; one test runs it as a subprocess)."""
    from coral_inference.cli.main import app

    result = CliRunner().invoke(app, list(args))
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr="")


def test_plugins_list_shows_the_backend_with_its_devices():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORAL_")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "coral_inference.cli.main",
            "plugins",
            "list",
            "--json",
            "--no-blocks",
            "--no-env",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    backends = {b["name"]: b for b in json.loads(out.stdout)["backends"]}
    openvino = backends["openvino"]
    assert openvino["available"] is True, openvino["reason"]
    assert "CPU" in openvino["devices"]
    assert (
        "coral-openvino 0.1.0" in openvino["origin"]
        and "coral_openvino.backend:OpenVinoBackend" in openvino["origin"]
    )
    assert openvino["details"]["device"] == "CPU"
    assert (
        backends["onnxruntime"]["devices"] == []
    )  # the field is general; built-ins leave it empty
    table = coral("plugins", "list", "--no-blocks", "--no-env")
    assert "devices" in table.stdout and "openvino" in table.stdout


def test_doctor_reports_the_backend_and_its_devices():
    out = coral("doctor", "--json", "--no-env")
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    check = checks["backend openvino"]
    assert check["status"] == "ok", check
    assert "devices: CPU" in check["detail"]


def test_config_validate_names_a_bad_option_by_its_dotted_path(tmp_path):
    bad = coral("config", "validate", "--no-env", "--set", "backends.options.openvino.device=TPU")
    assert bad.returncode != 0
    text = bad.stdout + bad.stderr
    assert (
        "backends.options.openvino.device = 'TPU'" in text
        and "'CPU', 'GPU', 'NPU' or 'AUTO'" in text
    )
    config = tmp_path / "coral.yaml"
    config.write_text(
        "backends:\n  options:\n    openvino:\n      device: AUTO\n      streams: 2\n      "
        "performance_hint: LATENCY\n      cache_dir: /tmp/ov-cache\n      devcie: GPU\n"
    )
    out = coral("config", "validate", "--config", str(config), "--no-env")
    assert out.returncode != 0
    assert "backends.options.openvino.devcie" in out.stdout + out.stderr
    config.write_text(config.read_text().replace("      devcie: GPU\n", ""))
    out = coral("config", "validate", "--config", str(config), "--no-env")
    assert out.returncode == 0, out.stdout + out.stderr
