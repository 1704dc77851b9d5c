"""Block manifests and the README's generated sections match the code."""

import re
from pathlib import Path

import pytest

from coral_inference.manifests import drift

ROOT = Path(__file__).resolve().parents[1]


def locked_inference_version() -> str:
    return re.search(
        r"^inference==(\S+)$", (ROOT / "requirements" / "dev.lock").read_text(), re.M
    ).group(1)


@pytest.mark.optional
def test_generated_files_do_not_drift(require_inference):
    # The manifests embed the engine's schemas: they are generated with the locked inference.
    if str(require_inference.version) != locked_inference_version():
        pytest.skip(
            f"manifests are generated with inference {locked_inference_version()} (requirements/dev.lock); "
            f"this environment has {require_inference.version}"
        )
    assert drift(ROOT) == [], "run: coral-runtime docs generate"
