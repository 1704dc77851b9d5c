"""Shared values of the web-plane tests: the API key and a config rooted in a temporary folder."""

from __future__ import annotations

from pathlib import Path

from coral_inference.webapp.auth import hash_key

API_KEY = "test-key-123"
HEADERS = {"X-API-Key": API_KEY}


def web_config(root: Path, **services) -> dict:
    """A configuration whose every path is under ``root``; ``services`` merges into services.*."""
    (root / "workflows").mkdir(parents=True, exist_ok=True)
    config = {
        "storage": {
            "root": str(root / "var"),
            "recordings": str(root / "var/recordings"),
            "results": str(root / "var/results"),
        },
        "plugins": {"entry_points": False},
        "services": {
            "pipelines": {
                "database": str(root / "var/pipelines.sqlite3"),
                "workflows_root": str(root / "workflows"),
                "videos_dir": str(root / "var/videos"),
                # Local videos of a test live in pytest's temporary folders; cameras 0-2 are fakes.
                "sources_roots": [str(root.parent)],
                "devices": [0, 1, 2],
            },
            "monitoring": {"poll_interval_s": 0.2, "min_free_bytes": 0},
            "auth": {"api_key_hashes": [hash_key(API_KEY)]},
            # TestClient sends Host: testserver, a name only tests use.
            "http": {"max_body_bytes": 64 * 1024, "allowed_hosts": ["testserver"]},
        },
    }
    for section, values in services.items():
        config["services"].setdefault(section, {}).update(values)
    return config
