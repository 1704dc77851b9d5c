"""Options and output helpers shared by every ``coral-runtime`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from coral_inference.config.loader import ConfigError, LoadedConfig, load_config
from coral_inference.pipelines.placement import cpu_list, pin_control_plane, worker_cpus

console = Console()
err_console = Console(stderr=True)

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML/JSON config file (default: $CORAL_CONFIG)."
)
SetOption = typer.Option(
    [], "--set", help="Override a setting: --set services.http.port=9200 (repeatable)."
)
NoEnvOption = typer.Option(False, "--no-env", help="Ignore CORAL_* environment variables.")
JsonOption = typer.Option(False, "--json", help="Print JSON for scripts instead of text.")


def load_or_exit(config: Path | None, overrides: list[str], no_env: bool) -> LoadedConfig:
    try:
        return load_config(config, overrides=overrides, use_env=not no_env)
    except ConfigError as exc:
        # Plain writes: problems carry paths and values that must not be re-wrapped.
        typer.echo(f"invalid configuration ({len(exc.problems)} problem(s)):", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None


def pin_control_plane_or_exit(loaded: LoadedConfig) -> tuple[int, ...] | None:
    """Pin this web process to ``services.pipelines.control_plane_cpus``; exit 2 naming bad cores.

    Call before ``init`` and the web app start threads or the workers' forkserver.
    """
    pipelines = loaded.descriptor.services.pipelines
    try:
        pinned = pin_control_plane(pipelines)
    except ValueError as exc:
        typer.echo(f"invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    if pinned:
        rest = worker_cpus(pipelines)
        err_console.print(
            f"control plane on CPU cores {cpu_list(pinned)}; pipelines on "
            f"{cpu_list(rest) if rest else 'every core'} (services.pipelines.control_plane_cpus)"
        )
    return pinned


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
