"""``coral-runtime web serve|hash-key``: run the control plane, make API keys."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from coral_inference.cli.common import (
    ConfigOption,
    NoEnvOption,
    SetOption,
    err_console,
    load_or_exit,
    pin_control_plane_or_exit,
)
from coral_inference.runtime import init, shutdown
from coral_inference.webapp.auth import generate_key, hash_key, is_loopback

# Pipelines share the interpreter with the event loop, so under load the loop can lag by seconds;
# uvicorn's 5 s keep-alive timer then closes connections that already carry a request.
KEEP_ALIVE_S = 30
GRACEFUL_SHUTDOWN_S = 20

app = typer.Typer(
    help="The web control plane: pipelines, live preview, recordings, metrics, health.",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    host: str | None = typer.Option(
        None, "--host", help="Bind address (default: services.http.host)."
    ),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: services.http.port)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the API and dashboard with the merged configuration until Ctrl-C / SIGTERM."""
    # heavy: uvicorn (~0.6 s); keeps `coral-runtime --help` from loading it
    import uvicorn

    # create_web_app imports the FastAPI app (fastapi, starlette, OpenCV)
    from coral_inference.webapp import create_web_app

    overrides = list(set_)
    if host is not None:
        overrides.append(f"services.http.host={host}")
    if port is not None:
        overrides.append(f"services.http.port={port}")
    loaded = load_or_exit(config, overrides, no_env)
    http = loaded.descriptor.services.http
    pin_control_plane_or_exit(loaded)
    context = init(loaded, source="coral-runtime web serve")
    try:
        web_app = create_web_app(context=context)
        url = f"http://{'[' + http.host + ']' if ':' in http.host else http.host}:{http.port}/"
        err_console.print(
            f"Coral control plane on [bold]{url}[/bold] (API: {url}api/v1, docs: {url}docs)"
        )
        if loaded.descriptor.services.auth.enabled == "off" and not is_loopback(http.host):
            err_console.print(
                f"[bold red]WARNING: services.auth.enabled is off on {http.host}: anyone who can reach this "
                "address can start pipelines, open cameras and read recordings.[/bold red]"
            )
        if web_app.state.generated_api_key:
            err_console.print(
                "no API key configured: this run accepts the key "
                f"[bold]{web_app.state.generated_api_key}[/bold] — make a permanent one with: coral-runtime web hash-key"
            )
        uvicorn.run(
            web_app,
            host=http.host,
            port=http.port,
            log_level=log_level,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    finally:
        shutdown()


@app.command("hash-key")
def hash_key_cmd(
    key: str | None = typer.Argument(
        None, help="The key to hash (default: generate a new random key)."
    ),
    stdin: bool = typer.Option(
        False, "--stdin", help="Read the key from standard input (keeps it out of shell history)."
    ),
) -> None:
    """Print the sha256 digest to put in services.auth.api_key_hashes (and a new key when none is given)."""

    if stdin:
        key = sys.stdin.readline().strip()
    if key is not None and not key:
        err_console.print("empty key: give a key, or none to generate one")
        raise typer.Exit(2)
    generated = key is None
    key = key or generate_key()
    digest = hash_key(key)
    if generated:
        typer.echo(f"key:    {key}")
        typer.echo(
            "        (shown once: give it to API clients; only the digest goes into the config)"
        )
    typer.echo(f"sha256: {digest}")
    typer.echo(f'config: services: {{auth: {{api_key_hashes: ["{digest}"]}}}}')
