"""``coral-runtime docs generate|check``: block manifests and the README's generated sections."""

from __future__ import annotations

from pathlib import Path

import typer

from coral_inference.cli.common import console, err_console
from coral_inference.manifests import drift, generate

app = typer.Typer(
    help="Generated block manifests and README reference sections.", no_args_is_help=True
)
RootOption = typer.Option(
    Path("."), "--root", help="Repository root (holds README.md and manifests/)."
)


@app.command("generate")
def generate_cmd(root: Path = RootOption) -> None:
    """Write manifests/*.json and the README's block and configuration reference."""

    written = generate(root.resolve())
    console.print("up to date" if not written else "wrote " + ", ".join(written))


@app.command("check")
def check_cmd(root: Path = RootOption) -> None:
    """Exit 1 when the generated files drift from the code."""

    changed = drift(root.resolve())
    if changed:
        err_console.print(
            "out of date: " + ", ".join(changed) + "\nrun: coral-runtime docs generate"
        )
        raise typer.Exit(1)
    console.print("generated files are up to date")
