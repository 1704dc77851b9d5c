"""Merging configuration sources and explaining where each value came from.

Precedence, lowest to highest: schema defaults < YAML/JSON file < ``CORAL_*``
environment variables (``__`` nests: ``CORAL_SERVICES__HTTP__PORT=9200``) <
``--set a.b=c`` overrides. Values from the environment and ``--set`` are parsed
as YAML scalars/flow collections, so ``true``, ``8``, ``[cuda, cpu]`` work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from coral_inference.config.errors import validation_problems
from coral_inference.config.schema import RuntimeDescriptor

ENV_PREFIX = "CORAL_"
CONFIG_PATH_ENV = "CORAL_CONFIG"
DEFAULT_SOURCE = "default"


class ConfigError(ValueError):
    """A configuration that cannot be used; ``problems`` lists each one."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid Coral configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class LoadedConfig:
    """The validated descriptor plus the source of every value that was set."""

    descriptor: RuntimeDescriptor
    sources: dict[str, str] = field(default_factory=dict)
    file: Path | None = None

    def source_of(self, dotted: str) -> str:
        """Source of a dotted path, inherited from the nearest set ancestor."""
        probe = dotted
        while probe:
            if probe in self.sources:
                return self.sources[probe]
            probe = probe.rpartition(".")[0]
        return DEFAULT_SOURCE

    def flat(self) -> dict[str, tuple[Any, str]]:
        """Every leaf of the effective config as ``dotted -> (value, source)``."""
        data = self.descriptor.model_dump(mode="json")
        return {path: (value, self.source_of(path)) for path, value in _leaves(data)}


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    use_env: bool = True,
) -> LoadedConfig:
    """Merge defaults, a file, ``CORAL_*`` variables and ``--set`` overrides, then validate.

    >>> load_config(overrides=["services.http.port=9200"]).descriptor.services.http.port
    9200
    """
    environ = os.environ if environ is None else environ
    if path is None and use_env and environ.get(CONFIG_PATH_ENV):
        path = environ[CONFIG_PATH_ENV]
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    file_path = Path(path) if path is not None else None
    if file_path is not None:
        data = read_config_file(file_path)
        _merge(merged, data, sources, f"file {file_path}")
    if use_env:
        for dotted, value, origin in _environment_layer(environ):
            _set_dotted(merged, dotted, value, sources, origin)
    for item in overrides:
        dotted, value = parse_override(item)
        _set_dotted(merged, dotted, value, sources, f"--set {item}")
    try:
        descriptor = RuntimeDescriptor.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, merged, sources)) from None
    return LoadedConfig(descriptor=descriptor, sources=sources, file=file_path)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a mapping, with errors naming the file."""
    if not path.is_file():
        raise ConfigError(
            [f"{path}: no such config file (create one with: coral-runtime config init -o {path})"]
        )
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(
            [f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"]
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping, got {type(data).__name__}"])
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``a.b=c`` into the dotted path and its YAML-parsed value."""
    dotted, sep, raw = item.partition("=")
    if not sep or not dotted.strip():
        raise ConfigError(
            [f"--set {item!r}: expected KEY=VALUE, e.g. --set services.http.port=9200"]
        )
    return dotted.strip(), _parse_scalar(raw)


def _environment_layer(environ: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    top_level = set(RuntimeDescriptor.model_fields)
    layer = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_PATH_ENV:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        # CORAL_* variables that are not config paths (CORAL_CACHE_DIR, …) are left alone;
        # a nested one whose head is unknown is a typo and gets reported by validation.
        if parts[0] not in top_level and len(parts) == 1:
            continue
        layer.append((".".join(parts), _parse_scalar(environ[name]), f"env {name}"))
    return layer


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def _merge(
    target: dict[str, Any],
    data: Mapping[str, Any],
    sources: dict[str, str],
    origin: str,
    prefix: str = "",
) -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _merge(target[key], value, sources, origin, dotted + ".")
        else:
            target[key] = _plain(value)
            _record(sources, dotted, value, origin)


def _set_dotted(
    target: dict[str, Any], dotted: str, value: Any, sources: dict[str, str], origin: str
) -> None:
    node = target
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    last = parts[-1]
    if isinstance(value, Mapping) and value:
        if not isinstance(node.get(last), dict):
            node[last] = {}
        _merge(node[last], value, sources, origin, dotted + ".")
    else:
        node[last] = _plain(value)
        _record(sources, dotted, value, origin)


def _record(sources: dict[str, str], dotted: str, value: Any, origin: str) -> None:
    # A later layer that replaces a subtree owns every path below it.
    for key in [k for k in sources if k.startswith(dotted + ".")]:
        del sources[key]
    sources[dotted] = origin
    if isinstance(value, Mapping):
        for path, _ in _leaves(value, dotted + "."):
            sources[path] = origin


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _leaves(data: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), data


def _explain(exc: ValidationError, merged: dict[str, Any], sources: dict[str, str]) -> list[str]:
    def location(error: ErrorDetails) -> str:
        path = ".".join(_config_path(error["loc"], merged))
        value = "" if error["type"] == "missing" else f" = {error.get('input')!r}"
        return f"{path}{value} (from {_source_near(path, sources)})"

    hint = "compare with: coral-runtime config init"
    return validation_problems(exc.errors(), unknown_hint=hint, location=location, show_input=False)


def _config_path(loc: tuple[Any, ...], merged: dict[str, Any]) -> list[str]:
    """The error location as config keys: drops the tag pydantic adds for tagged unions."""
    path, node = [], merged
    for part in loc:
        key = str(part)
        if isinstance(node, dict) and key not in node and node.get("type") == key:
            continue
        path.append(key)
        node = node.get(key) if isinstance(node, dict) else None
    return path


def _source_near(dotted: str, sources: dict[str, str]) -> str:
    """Source of a path: its own or an ancestor's, else a sibling's or descendant's set in the same layer."""
    probe = dotted
    while probe:
        if probe in sources:
            return sources[probe]
        probe = probe.rpartition(".")[0]
    for scope in (dotted, dotted.rpartition(".")[0]):
        for key, origin in sources.items():
            if scope and key.startswith(scope + "."):
                return origin
    return DEFAULT_SOURCE
