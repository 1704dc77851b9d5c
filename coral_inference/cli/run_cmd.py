"""``coral-runtime run WORKFLOW.json --video SRC``: one workflow on one video source."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.live import Live
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
from coral_inference.config.loader import parse_override
from coral_inference.pipelines.runner import PipelineRunner, PipelineStartError
from coral_inference.results import to_jsonable
from coral_inference.runtime import init, shutdown
from coral_inference.workflow_check import (
    InvalidWorkflowError,
    structural_problems,
    unwrap_specification,
)


def read_workflow(path: Path) -> dict[str, Any]:
    """A workflow JSON file; accepts the bare definition or an export with ``specification``."""
    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such workflow file", param_hint="WORKFLOW")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            param_hint="WORKFLOW",
        ) from None
    return unwrap_specification(data)


def run(
    workflow: Path = typer.Argument(..., help="Workflow definition (JSON)."),
    video: str = typer.Option(
        ..., "--video", "-v", help="Video file, http(s) URL, rtsp:// URL or camera index."
    ),
    max_fps: float | None = typer.Option(
        None, "--max-fps", help="Limit the frame rate (live sources drop frames)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write every frame's results as JSON lines."
    ),
    param: list[str] = typer.Option(
        [], "--param", help="Workflow input: --param zone=[[0,0],[10,10]] (repeatable)."
    ),
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Run a workflow on a video source with a live progress line and a summary at the end."""

    loaded = load_or_exit(config, set_, no_env)
    definition = read_workflow(workflow)
    parameters = dict(parse_override(p) for p in param)
    context = init(loaded, source="coral-runtime run")
    sink = output.open("w", encoding="utf-8") if output else None
    recordings = context.config.storage.recordings
    started = running_since = time.time()
    interrupted = False

    def on_result(result: Any) -> None:
        if sink is not None:
            sink.write(
                json.dumps(
                    {
                        "frame_id": result.frame_id,
                        "timestamp": result.frame_timestamp.isoformat(),
                        "outputs": to_jsonable(result.outputs),
                    }
                )
                + "\n"
            )

    try:
        problems = structural_problems(definition)
        if problems:
            _print_problems(workflow, problems)
        runner = PipelineRunner(
            context,
            definition,
            video,
            max_fps=max_fps,
            workflows_parameters=parameters,
            on_result=on_result,
        )
        try:
            runner.start()
        except PipelineStartError as exc:
            if isinstance(exc.__cause__, InvalidWorkflowError):
                _print_problems(workflow, exc.__cause__.problems)
            err_console.print(str(exc), markup=False)
            raise typer.Exit(1) from None
        running_since = time.time()
        try:
            with Live(
                _progress(runner.status()),
                console=err_console,
                refresh_per_second=4,
                transient=True,
            ) as live:
                while not runner.join(timeout=0.25):
                    live.update(_progress(runner.status()))
        except KeyboardInterrupt:
            interrupted = True
            err_console.print("interrupted: stopping the pipeline…")
            runner.terminate()
            runner.join(timeout=30)
        status = runner.status()
    finally:
        if sink is not None:
            sink.close()
        shutdown()
    files = _files_written(recordings, started) + ([str(output)] if output else [])
    elapsed = max(time.time() - running_since, 1e-6)
    summary = {
        **status,
        "interrupted": interrupted,
        "files": files,
        "workflow": str(workflow),
        "source": video,
        "elapsed_s": round(elapsed, 2),
        "average_fps": round(status.get("frames", 0) / elapsed, 2),
    }
    if json_:
        print_json(summary)
    else:
        _print_summary(summary)
    if status.get("state") == "failed":
        raise typer.Exit(1)


def _print_problems(workflow: Path, problems: list[Any]) -> None:
    err_console.print(f"{workflow}: invalid workflow definition", markup=False)
    for problem in problems:
        typer.echo(f"  {problem}", err=True)
    raise typer.Exit(2)


def _progress(status: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_row(
        f"[bold]{status.get('state')}[/bold]",
        f"frames {status.get('frames', 0)}",
        f"fps {status.get('fps') or 0:.1f}",
        f"inference {(status.get('inference_latency_ms') or 0):.0f} ms",
        f"detections {status.get('detections_total', 0)}",
    )
    return table


def _files_written(root: Path, since: float) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= since - 1)


def _print_summary(s: dict[str, Any]) -> None:
    console.print(
        f"[bold]{s['workflow']}[/bold] on {s.get('source')}: {s.get('state')}"
        + (" (interrupted)" if s["interrupted"] else "")
    )
    console.print(
        f"  {s.get('frames', 0)} frames in {s['elapsed_s']:.1f} s ({s['average_fps']:.1f} fps), "
        f"dropped {s.get('dropped_frames', 0)}, inference {(s.get('inference_latency_ms') or 0):.0f} ms, "
        f"detections {s.get('detections_total', 0)}"
    )
    if s.get("error"):
        console.print(f"  [red]error[/red]: {s['error']}", markup=True)
    for path in s["files"]:
        console.print(f"  wrote {path}")
