"""Shared test fixtures: offline inference, free ports, required external tools.

A test that needs a server binary, a browser or ``inference`` asks for it through
``require_tool`` / ``require_inference``; outside CI it skips with the reason, in CI
(``CORAL_REQUIRE_ALL=1``, set by ``.ci/run``) it fails instead, so nothing is
silently skipped there.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ.setdefault("DISABLE_VERSION_CHECK", "True")
os.environ.setdefault("CORE_MODEL_SAM_ENABLED", "False")
os.environ.setdefault("CORE_MODEL_SAM3_ENABLED", "False")
os.environ.setdefault("CORE_MODEL_YOLO_WORLD_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
REQUIRE_ALL = os.environ.get("CORAL_REQUIRE_ALL") == "1"
# The whole run's limit. pytest-timeout's signal cannot interrupt a hang inside native code
# (a deadlock in a C++ runtime held the GIL and CI ran into its 90-minute kill with no
# trace), so faulthandler's own thread dumps every stack and ends the run first.
WATCHDOG_S = int(os.environ.get("CORAL_TEST_WATCHDOG_S", "4200"))
_WATCHDOG_FILE = pytest.StashKey()


def pytest_configure(config):
    if WATCHDOG_S <= 0:
        return
    # the dump goes to the real stderr, not to pytest's capture file
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=False)
    try:
        config.stash[_WATCHDOG_FILE] = os.fdopen(os.dup(2), "w")
    finally:
        if capture is not None:
            capture.resume_global_capture()
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=config.stash[_WATCHDOG_FILE])


def pytest_unconfigure(config):
    faulthandler.cancel_dump_traceback_later()
    if _WATCHDOG_FILE in config.stash:
        config.stash[_WATCHDOG_FILE].close()


def missing(reason: str) -> None:
    """Skip with a printed reason locally; fail in CI where everything must be present."""
    if REQUIRE_ALL:
        pytest.fail(f"required in CI but missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def require_tool():
    def _require(binary: str) -> str:
        path = shutil.which(binary) or (
            f"/usr/bin/{binary}" if Path(f"/usr/bin/{binary}").exists() else None
        )
        if path is None:
            missing(f"{binary} is not installed (scripts/dev-env installs it)")
        return path

    return _require


@pytest.fixture
def require_inference():
    from coral_inference import compat

    if compat.inference_info() is None:
        missing("Roboflow inference is not installed (scripts/dev-env installs it)")
    return compat.inference_info()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(autouse=True)
def _no_leftover_runtime():
    """Every test starts and ends without an initialised Coral runtime."""
    from coral_inference.runtime import shutdown

    shutdown()
    yield
    shutdown()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skip is a failure: every test must really run there (``optional`` ones excepted)."""
    outcome = yield
    report = outcome.get_result()
    if (
        REQUIRE_ALL
        and report.skipped
        and not hasattr(report, "wasxfail")
        and not item.get_closest_marker("optional")
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped, but CI (CORAL_REQUIRE_ALL=1) runs everything: {report.longrepr}"
        )
