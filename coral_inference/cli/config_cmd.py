"""``coral-runtime config init|validate|show``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from coral_inference.cli.common import (
    ConfigOption,
    JsonOption,
    NoEnvOption,
    SetOption,
    console,
    err_console,
    load_or_exit,
    print_json,
)
from coral_inference.config.template import render_default_config

app = typer.Typer(help="Write, check and show the runtime configuration.", no_args_is_help=True)


@app.command("init")
def config_init(
    output: Path = typer.Option(
        Path("coral.yaml"), "--output", "-o", help="File to write ('-' for stdout)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented default configuration file."""
    text = render_default_config()
    if str(output) == "-":
        typer.echo(text, nl=False)
        return
    if output.exists() and not force:
        err_console.print(f"{output} exists; pass --force to overwrite it")
        raise typer.Exit(1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output}")


@app.command("validate")
def config_validate(
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Exit 0 when the merged configuration is valid; else name every bad setting."""
    loaded = load_or_exit(config, set_, no_env)
    if json_:
        print_json({"valid": True, "file": str(loaded.file) if loaded.file else None})
    else:
        console.print(f"[green]valid[/green]: {loaded.file or 'defaults'}")


@app.command("show")
def config_show(
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """The effective configuration and where each value came from."""
    loaded = load_or_exit(config, set_, no_env)
    flat = loaded.flat()
    if json_:
        print_json(
            {path: {"value": value, "source": source} for path, (value, source) in flat.items()}
        )
        return
    table = Table("setting", "value", "source")
    for path, (value, source) in flat.items():
        table.add_row(path, repr(value), source, style=None if source == "default" else "bold")
    console.print(table)
