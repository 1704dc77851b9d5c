"""Generated documentation: block manifests (``manifests/*.json``) and README reference sections.

``coral-runtime docs generate`` writes them, ``coral-runtime docs check`` (and a
test) fails when the committed files drift from the code.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from coral_inference.config.template import config_reference

MARKERS = {
    "blocks": ("<!-- generated:blocks -->", "<!-- /generated:blocks -->"),
    "config": ("<!-- generated:config -->", "<!-- /generated:config -->"),
}


def block_manifests(plugin: str = "coral_workflows") -> dict[str, dict[str, Any]]:
    """``file stem -> manifest`` for every block of a Workflows plugin (imports inference)."""
    module = importlib.import_module(plugin)
    result = {}
    for cls in module.load_blocks():
        manifest_cls = cls.get_manifest()
        schema = manifest_cls.model_json_schema()
        type_field = schema["properties"]["type"]
        block_type = type_field.get("const") or type_field["enum"][0]
        extra = dict(manifest_cls.model_config.get("json_schema_extra") or {})
        outputs = [
            {"name": o.name, "kinds": [k.name for k in o.kind]} for o in manifest_cls.describe_outputs()
        ]
        stem = re.sub(r"[^a-z0-9]+", "_", block_type.split("/", 1)[-1].lower()).strip("_")
        result[stem] = {
            "type": block_type,
            "name": extra.get("name"),
            "version": extra.get("version"),
            "short_description": extra.get("short_description"),
            "long_description": extra.get("long_description"),
            "license": extra.get("license"),
            "block_type": extra.get("block_type"),
            "execution_engine_compatibility": manifest_cls.get_execution_engine_compatibility(),
            "init_parameters": cls.get_init_parameters(),
            "outputs": outputs,
            "schema": schema,
        }
    return result


def render_blocks_reference(manifests: dict[str, dict[str, Any]]) -> str:
    lines = []
    for stem, m in sorted(manifests.items()):
        lines.append(f"### `{m['type']}` — {m['name']}")
        lines.append("")
        lines.append(m["short_description"] or "")
        lines.append("")
        lines.append("| input | description |")
        lines.append("|---|---|")
        for field, spec in m["schema"]["properties"].items():
            if field in {"type", "name"}:
                continue
            desc = (spec.get("description") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{field}` | {desc} |")
        lines.append("")
        outputs = ", ".join(f"`{o['name']}` ({', '.join(o['kinds'])})" for o in m["outputs"])
        lines.append(f"Outputs: {outputs}. Manifest: [`manifests/{stem}.json`](manifests/{stem}.json).")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_config_reference() -> str:
    lines = ["| setting | default | description |", "|---|---|---|"]
    for path, default, description in config_reference():
        lines.append(f"| `{path}` | `{default}` | {description} |")
    return "\n".join(lines) + "\n"


def replace_section(text: str, name: str, body: str) -> str:
    start, end = MARKERS[name]
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {start} … {end} section")
    return pattern.sub(lambda _: f"{start}\n{body}{end}", text)


def expected_files(root: Path) -> dict[Path, str]:
    """Every generated file with the content it must have."""
    manifests = block_manifests()
    files = {
        root / "manifests" / f"{stem}.json": json.dumps(m, indent=2, sort_keys=True, default=str) + "\n"
        for stem, m in manifests.items()
    }
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    text = replace_section(text, "blocks", render_blocks_reference(manifests))
    text = replace_section(text, "config", render_config_reference())
    files[readme] = text
    return files


def drift(root: Path) -> list[str]:
    """Generated files that differ from what the code would write (and stale manifests)."""
    expected = expected_files(root)
    stale = [p for p in (root / "manifests").glob("*.json") if p not in expected]
    changed = [p for p, content in expected.items() if not p.exists() or p.read_text(encoding="utf-8") != content]
    return sorted(str(p.relative_to(root)) for p in changed + stale)


def generate(root: Path) -> list[str]:
    expected = expected_files(root)
    (root / "manifests").mkdir(exist_ok=True)
    for stale in (root / "manifests").glob("*.json"):
        if stale not in expected:
            stale.unlink()
    written = []
    for path, content in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            written.append(str(path.relative_to(root)))
    return written
