"""The pilot reaches Coral only through its entry point; Coral's core never names it."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[3]
CORE_PACKAGES = ("coral_inference", "coral_workflows")


def test_core_packages_never_mention_the_pilot():
    offenders = []
    for package in CORE_PACKAGES:
        for path in sorted((REPO / package).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            if b"openvino" in path.read_bytes().lower():
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == [], f"the core mentions OpenVINO: {offenders}"
    assert len(list((REPO / "coral_inference").rglob("*.py"))) > 50  # really scanned the core


def test_the_backend_is_registered_only_by_the_plugin_distribution():
    (entry,) = [
        e
        for e in importlib.metadata.entry_points(group="coral_inference.backends")
        if e.name == "openvino"
    ]
    assert entry.value == "coral_openvino.backend:OpenVinoBackend"
    assert entry.dist is not None and entry.dist.metadata["Name"] == "coral-openvino"
    core = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "openvino" not in core["project"]["entry-points"]["coral_inference.backends"]
    plugin = tomllib.loads((REPO / "plugins" / "coral-openvino" / "pyproject.toml").read_text())
    assert plugin["project"]["entry-points"]["coral_inference.backends"] == {
        "openvino": "coral_openvino.backend:OpenVinoBackend"
    }
    assert {"coral-inference>=0.1", "openvino>=2025.0"} <= set(plugin["project"]["dependencies"])
