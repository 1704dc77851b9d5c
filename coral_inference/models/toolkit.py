"""``coral-runtime models toolkit install``: rknn-toolkit2 in its own environment, from the wheel.

Rockchip's converter pins old torch/numpy/onnx/protobuf releases that cannot live next to
``inference``, so it gets a separate virtual environment under Coral's cache
(``$CORAL_CACHE_DIR/rknn-toolkit2-<version>``, default ``~/.cache/coral``), marked complete
with ``.coral-complete`` only after ``from rknn.api import RKNN`` works there. ``models
convert`` finds it (``coral_inference.models.convert.toolkit_python``). This is the same
recipe as the repository's ``scripts/rknn-toolkit-env``, shipped in the package so a user who
installed Coral with pip has it too.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from coral_inference.backends.base import BackendError

DEFAULT_VERSION = (
    "2.3.2"  # Ultralytics and Frigate use it; 2.5.0 reportedly fails some YOLO11 builds
)
PINS = [
    "setuptools<70",
    "onnx>=1.16.1,<1.17",
    "pyyaml",
]  # pkg_resources and onnx.mapping for rknn.api
SUPPORTED_PYTHONS = ((3, 8), (3, 12))


class ToolkitInstallError(BackendError):
    """The toolkit environment could not be built; the message says which step and why."""


def cache_root() -> Path:
    base = (
        os.environ.get("CORAL_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coral"
    )
    return Path(base)


def toolkit_dir(version: str = DEFAULT_VERSION) -> Path:
    return cache_root() / f"rknn-toolkit2-{version}"


def find_python(explicit: str | None = None) -> str:
    """A Python 3.8-3.12 interpreter for the toolkit (its wheels stop at cp312)."""
    if explicit:
        return explicit
    if SUPPORTED_PYTHONS[0] <= sys.version_info[:2] <= SUPPORTED_PYTHONS[1]:
        return sys.executable
    for name in ("python3.11", "python3.10", "python3.12", "python3.9", "python3.8"):
        found = shutil.which(name)
        if found:
            return found
    raise ToolkitInstallError(
        f"rknn-toolkit2 needs Python 3.8-3.12 and this is {platform.python_version()}; install one "
        f"(e.g. apt install python3.11-venv) or pass --python /path/to/python3.11"
    )


def install_commands(version: str, python: str, target: Path) -> list[list[str]]:
    bin_python = str(target / "bin" / "python")
    return [
        [python, "-m", "venv", str(target)],
        [bin_python, "-m", "pip", "install", "--upgrade", "pip"],
        [bin_python, "-m", "pip", "install", f"rknn-toolkit2=={version}", *PINS],
        [bin_python, "-c", "from rknn.api import RKNN; RKNN().release()"],
    ]


def install_toolkit(
    version: str = DEFAULT_VERSION,
    *,
    python: str | None = None,
    force: bool = False,
    say: Callable[[str], None] = lambda line: None,
    run: Callable[[Sequence[str]], int] | None = None,
) -> Path:
    """Build (or reuse) the toolkit environment and return its directory."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "aarch64", "arm64"):
        raise ToolkitInstallError(
            f"rknn-toolkit2 has wheels for Linux x86-64 and aarch64 only, not {machine}"
        )
    target = toolkit_dir(version)
    if (target / ".coral-complete").is_file() and not force:
        say(f"rknn-toolkit2 {version} is already installed in {target}")
        return target
    interpreter = find_python(python)
    if target.exists():
        shutil.rmtree(target)
    runner = run or (lambda command: subprocess.run(list(command), check=False).returncode)
    steps = [
        "create the environment",
        "upgrade pip",
        f"install rknn-toolkit2=={version} (a few GB)",
        "check that rknn.api imports",
    ]
    for step, command in zip(steps, install_commands(version, interpreter, target), strict=True):
        say(f"{step}: {' '.join(command)}")
        code = runner(command)
        if code != 0:
            raise ToolkitInstallError(
                f"building {target} failed at '{step}' (exit {code}); rerun with a working network "
                f"and Python 3.8-3.12 (--python), or see docs/models.md"
            )
    (target / ".coral-complete").write_text(f"rknn-toolkit2=={version}\n")
    say(f"rknn-toolkit2 {version} ready in {target}; coral-runtime models convert uses it")
    return target
