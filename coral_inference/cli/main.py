"""``coral-runtime``: configuration, runtime inspection, plugins and environment checks."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from coral_inference.cli import (
    config_cmd,
    demo_cmd,
    docs_cmd,
    models_cmd,
    run_cmd,
    server_cmd,
    web_cmd,
)
from coral_inference.cli.common import (
    ConfigOption,
    JsonOption,
    NoEnvOption,
    SetOption,
    console,
    load_or_exit,
    print_json,
)
from coral_inference.cli.doctor import run_checks
from coral_inference.manifests import block_manifests
from coral_inference.runtime import init, shutdown

app = typer.Typer(
    name="coral-runtime",
    help="Coral: Roboflow Workflows on edge boxes (RKNN NPU, ONNX Runtime, CPU).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(docs_cmd.app, name="docs")
app.add_typer(models_cmd.app, name="models")
app.command("run")(run_cmd.run)
app.command("demo")(demo_cmd.demo)
app.add_typer(web_cmd.app, name="web")
app.add_typer(server_cmd.app, name="server")
plugins_app = typer.Typer(
    help="Installed backends, patches, workflow blocks and web plugins.", no_args_is_help=True
)
app.add_typer(plugins_app, name="plugins")


def _context(config: Path | None, set_: list[str], no_env: bool):

    return init(load_or_exit(config, set_, no_env), source="coral-runtime CLI")


@app.command("init")
def init_cmd(
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Initialise the runtime and print what it found."""

    context = _context(config, set_, no_env)
    try:
        description = context.describe()
    finally:
        shutdown()
    if json_:
        print_json(description)
        return
    _print_description(description)


def _print_description(d: dict[str, Any]) -> None:
    p = d["platform"]
    console.print(f"[bold]Coral {d['coral_version']}[/bold] on Python {d['python']}")
    console.print(
        f"platform: [bold]{p['kind']}[/bold] {p['soc'] or ''} ({p['detected_by']}; {p['machine']})"
    )
    inf = d["inference"]
    if inf.get("version"):
        flag = "supported" if inf["supported"] else f"[red]NOT in {inf['supported_range']}[/red]"
        console.print(
            f"inference: {inf['distribution']} {inf['version']} ({flag}; engine in {inf['engine_module']})"
        )
    else:
        console.print(
            f"inference: [yellow]not installed[/yellow] (supported: {inf['supported_range']})"
        )
    table = Table("backend", "available", "devices", "reason", "origin", title="backends")
    for b in d["backends"]:
        devices = ", ".join(b.get("devices") or []) or "-"
        table.add_row(
            b["name"],
            "yes" if b.get("available") else "no",
            devices,
            str(b.get("reason")),
            b["origin"],
        )
    console.print(table)
    table = Table("patch", "state", "reason", title="patches")
    for row in d["patches"]:
        table.add_row(row["name"], row["state"], row["reason"])
    console.print(table)


@plugins_app.command("list")
def plugins_list(
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
    blocks: bool = typer.Option(
        True,
        "--blocks/--no-blocks",
        help="Load workflow plugins to list their blocks (imports inference).",
    ),
) -> None:
    """Backends, patches, workflow blocks and web plugins, with versions."""

    context = _context(config, set_, no_env)
    try:
        d = context.describe()
        result = {
            "inference": d["inference"],
            "platform": d["platform"],
            "backends": d["backends"],
            "patches": d["patches"],
            "workflow_plugins": [
                _workflow_plugin(m) if blocks else {"module": m}
                for m in context.config.plugins.workflows
            ],
            "web_plugins": d["plugins"]["web"],
        }
    finally:
        shutdown()
    if json_:
        print_json(result)
        return
    _print_description({**d, "backends": result["backends"], "patches": result["patches"]})
    table = Table("workflow plugin", "block type", "version", "name", title="workflow blocks")
    for plugin in result["workflow_plugins"]:
        if plugin.get("error"):
            table.add_row(plugin["module"], f"[red]{plugin['error']}[/red]", "", "")
        for block in plugin.get("blocks", []):
            table.add_row(plugin["module"], block["type"], block["version"], block["name"])
    console.print(table)
    table = Table("web plugin", "target", "distribution", "loaded", title="web plugins")
    for w in result["web_plugins"]:
        table.add_row(
            w["name"],
            w["target"],
            f"{w['distribution']} {w['version']}",
            "yes" if w["loaded"] else w["error"],
        )
    console.print(table)


def _workflow_plugin(module_name: str) -> dict[str, Any]:

    dist = (packages_distributions().get(module_name.split(".")[0]) or [None])[0]
    try:
        dist_version = version(dist) if dist else None
    except PackageNotFoundError:
        dist_version = None
    try:
        manifests = block_manifests(module_name)
    except Exception as exc:
        return {
            "module": module_name,
            "distribution": dist,
            "version": dist_version,
            "error": f"{type(exc).__name__}: {exc}",
        }
    blocks = [
        {"type": m["type"], "name": m["name"], "version": m["version"]} for m in manifests.values()
    ]
    return {"module": module_name, "distribution": dist, "version": dist_version, "blocks": blocks}


@app.command("doctor")
def doctor_cmd(
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Check the environment; each failing check says how to fix it. Exit 1 on a failure."""

    context = _context(config, set_, no_env)
    try:
        checks = run_checks(context)
    finally:
        shutdown()
    if json_:
        print_json([c.as_dict() for c in checks])
    else:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            console.print(
                f"[{colour[c.status]}]{c.status:>4}[/] {c.name}: {c.detail}"
                + (f"\n       fix: {c.fix}" if c.fix else "")
            )
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
