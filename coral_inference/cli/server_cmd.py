"""``coral-runtime server start``: Roboflow's inference server with its stream manager and Coral."""

from __future__ import annotations

from pathlib import Path

import typer

from coral_inference.cli.common import err_console
from coral_inference.config.loader import ConfigError
from coral_inference.server.launcher import ServerSettings, run_server
from coral_inference.server.plugin import load_server_config

app = typer.Typer(
    help="Roboflow's inference server (HTTP API and stream manager) with Coral's plugin.",
    no_args_is_help=True,
)


@app.command("start")
def start(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Coral config file (becomes CORAL_CONFIG)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address."),
    port: int = typer.Option(
        9001, "--port", min=1, max=65535, help="Port (inference's default: 9001)."
    ),
    stream_manager: bool = typer.Option(
        True,
        "--stream-manager/--no-stream-manager",
        help="Run the stream manager (/inference_pipelines/*).",
    ),
    log_file: Path | None = typer.Option(
        None, "--log-file", help="Full log (default: <data dir>/logs/inference-server.log)."
    ),
    warm_pipelines: int = typer.Option(
        0, "--warm-pipelines", min=0, help="Idle pipeline processes kept ready."
    ),
) -> None:
    """Serve inference's HTTP app with the Coral plugin, offline defaults and CORAL_CONFIG."""

    if config is not None:
        if not config.is_file():
            err_console.print(f"[red]{config}: no such config file[/red]")
            raise typer.Exit(2)
        try:
            load_server_config({"CORAL_CONFIG": str(config.resolve())})
        except ConfigError as exc:  # the server still starts: only Coral workflows are refused
            err_console.print(f"[yellow]warning: {exc}[/yellow]")
    run_server(
        ServerSettings(
            host=host,
            port=port,
            config=config,
            stream_manager=stream_manager,
            log_file=log_file,
            warm_pipelines=warm_pipelines,
        )
    )
