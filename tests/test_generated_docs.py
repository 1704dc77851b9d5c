"""Block manifests and the README's generated sections match the code."""

from pathlib import Path

from coral_inference.manifests import drift

ROOT = Path(__file__).resolve().parents[1]


def test_generated_files_do_not_drift(require_inference):
    assert drift(ROOT) == [], "run: coral-runtime docs generate"
