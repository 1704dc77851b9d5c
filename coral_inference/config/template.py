"""A commented default config file and a flat reference, both generated from the schema."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

from coral_inference.config.schema import RuntimeDescriptor

HEADER = """\
# Coral runtime configuration (every value below is the default).
# Precedence: defaults < this file < CORAL_* environment (CORAL_SERVICES__HTTP__PORT=9200)
#             < --set services.http.port=9200 on the command line.
# Check a file with: coral-runtime config validate -c FILE
"""


def render_default_config() -> str:
    """The default configuration as commented YAML."""
    lines = [HEADER]
    _render_model(RuntimeDescriptor(), lines, indent=0)
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    dumped = yaml.safe_dump(
        json.loads(json.dumps(value, default=str)), default_flow_style=True, width=1000
    )
    return dumped.strip().removesuffix("...").strip()


def _render_model(model: BaseModel, lines: list[str], indent: int) -> None:
    pad = " " * indent
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if field.description:
            lines.append(f"{pad}# {field.description}")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            _render_model(value, lines, indent + 2)
        elif (
            isinstance(value, dict)
            and value
            and all(isinstance(v, BaseModel) for v in value.values())
        ):
            lines.append(f"{pad}{name}:")
            for key, item in value.items():
                lines.append(f"{pad}  {key}:")
                _render_model(item, lines, indent + 4)
        else:
            plain = (
                value.model_dump(mode="json") if isinstance(value, BaseModel) else _jsonable(value)
            )
            lines.append(f"{pad}{name}: {_scalar(plain)}")
        if indent == 0:
            lines.append("")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def config_reference() -> list[tuple[str, str, str]]:
    """``(dotted path, default, description)`` for every leaf setting."""
    rows: list[tuple[str, str, str]] = []
    _walk(RuntimeDescriptor(), "", rows)
    return rows


def _walk(model: BaseModel, prefix: str, rows: list[tuple[str, str, str]]) -> None:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _walk(value, f"{prefix}{name}.", rows)
        else:
            rows.append((f"{prefix}{name}", _scalar(_jsonable(value)), field.description or ""))
