"""blocks/: a generated page per block, in step with its manifest, with an example tests run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coral_inference.manifests import example_workflows, render_block_page, render_blocks_index

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = {
    p.stem: json.loads(p.read_text(encoding="utf-8"))
    for p in sorted((ROOT / "manifests").glob("*.json"))
}


@pytest.mark.parametrize("stem", sorted(MANIFESTS))
def test_each_block_page_matches_its_manifest_and_shows_a_tested_example(stem):
    manifest = MANIFESTS[stem]
    example = example_workflows(ROOT).get(manifest["type"])
    assert example is not None, f"no workflow in examples/workflows uses {manifest['type']}"
    page = (ROOT / "blocks" / f"{stem}.md").read_text(encoding="utf-8")
    assert page == render_block_page(stem, manifest, example, ROOT), (
        "run: coral-runtime docs generate"
    )
    steps = json.loads(example.read_text(encoding="utf-8"))["steps"]
    assert manifest["type"] in {step["type"] for step in steps}


def test_the_index_lists_every_block_and_no_page_is_stale():
    assert (ROOT / "blocks" / "README.md").read_text(encoding="utf-8") == render_blocks_index(
        MANIFESTS
    )
    pages = {p.stem for p in (ROOT / "blocks").glob("*.md")} - {"README"}
    assert pages == set(MANIFESTS)


def test_the_smallest_example_is_chosen(tmp_path):
    (tmp_path / "examples" / "workflows").mkdir(parents=True)
    for name, steps in (("big.json", 3), ("small.json", 1)):
        workflow = {"steps": [{"type": "coral/x@v1", "name": f"s{i}"} for i in range(steps)]}
        (tmp_path / "examples" / "workflows" / name).write_text(json.dumps(workflow))
    assert example_workflows(tmp_path)["coral/x@v1"].name == "small.json"
