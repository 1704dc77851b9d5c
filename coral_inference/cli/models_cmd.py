"""``coral-runtime models inspect|validate|bench|convert``: model packages from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
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
from coral_inference.cli.roboflow_fetch import fetch_roboflow_model
from coral_inference.models import ManifestError, ModelPackageError
from coral_inference.models.convert import (
    INSTALL_HINT,
    ConversionError,
    GateRefusedError,
    build_rknn,
    convert_with_gate,
    converter_from_env,
    load_frames,
    plan_rknn_build,
    rknn_toolkit_available,
)
from coral_inference.models.importing import import_model
from coral_inference.models.package import sha256_of
from coral_inference.models.parity import difference_text
from coral_inference.models.toolkit import (
    ToolkitInstallError,
    find_python,
    install_commands,
    install_toolkit,
    toolkit_dir,
)
from coral_inference.models.validation import Check, check_package
from coral_inference.runtime import init, shutdown
from coral_inference.runtime.context import RuntimeContext

app = typer.Typer(
    help="Inspect, validate, benchmark and convert model packages.", no_args_is_help=True
)

PackageArgument = typer.Argument(
    ..., help="Package directory, bundled package name (coral-demo) or config model name."
)


def _context(config: Path | None, set_: list[str], no_env: bool) -> RuntimeContext:

    return init(load_or_exit(config, set_, no_env), source="coral-runtime models")


def _package(context: RuntimeContext, reference: str):

    # heavy: models.loaded imports supervision (~3 s with its scipy, PIL)
    from coral_inference.models.loaded import resolve_reference

    try:
        return resolve_reference(context.catalog, reference)[0]
    except ModelPackageError as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


@app.command("inspect")
def inspect_cmd(
    package: str = PackageArgument,
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Show a package: classes, input, head, artifacts and the backends that can run it here."""

    context = _context(config, set_, no_env)
    try:
        pkg = _package(context, package)
        available = set(context.backends.available())
        info = {
            "name": pkg.name,
            "package": str(pkg.root),
            "manifest": str(pkg.manifest_path),
            "task": pkg.manifest.task,
            "description": pkg.manifest.description,
            "classes": pkg.classes,
            "input": pkg.input.model_dump(),
            "head": pkg.head.model_dump(),
            "artifacts": {
                backend: {
                    **spec.model_dump(exclude_none=True, exclude_defaults=True),
                    "bytes": _size(pkg, backend),
                    "backend_available_here": backend in available,
                }
                for backend, spec in pkg.manifest.artifacts.items()
            },
            "convert": pkg.manifest.convert.model_dump(exclude_none=True),
            "metadata": pkg.manifest.metadata,
            "parity": _parity_reports(pkg),
        }
    finally:
        shutdown()
    if json_:
        print_json(info)
        return
    console.print(f"[bold]{info['name']}[/bold] ({info['task']}) — {info['package']}")
    if info["description"]:
        console.print(info["description"])
    console.print(f"classes ({len(info['classes'])}): {', '.join(info['classes'])}")
    i = info["input"]
    console.print(
        f"input: {i['width']}x{i['height']} {i['layout']} {i['color']} {i['dtype']}, {i['resize']} (pad {i['pad_value']}), "
        f"scale {i['scale']:.6g} mean {list(i['mean'])} std {list(i['std'])}"
    )
    console.print(f"head: {info['head']['type']} (strides {info['head']['strides']})")
    table = Table("backend", "source", "bytes", "sha256", "available here", title="artifacts")
    for backend, a in info["artifacts"].items():
        table.add_row(
            backend,
            a.get("file") or a.get("url", ""),
            str(a["bytes"] or "-"),
            (a.get("sha256") or "-")[:16],
            "yes" if a["backend_available_here"] else "no",
        )
    console.print(table)
    for backend, report in info["parity"].items():
        if "error" in report:
            console.print(
                f"[yellow]parity report of {backend} unreadable:[/yellow] {report['error']}"
            )
            continue
        forced = " (added with --force)" if report.get("forced") else ""
        gates = report.get("gates") or {"box_map50": report.get("gate")}
        metrics = report.get("metrics") or {"box_map50": report.get("agreement")}
        measured = ", ".join(f"{m} {metrics.get(m)} vs gate {g}" for m, g in gates.items())
        console.print(
            f"parity of {backend} ({report.get('target_platform')}, {'int8' if report.get('quantize') else 'fp16'}): "
            f"{measured} on {report.get('frames')} "
            f"frames, cosine {report.get('cosine')}, {len(report.get('differences', []))} differences"
            f"{forced}",
            soft_wrap=True,
            highlight=False,
        )


def _parity_reports(package: Any) -> dict[str, Any]:
    """The conversion parity reports the manifest points at (``metadata.conversions.<backend>.report``)."""

    reports: dict[str, Any] = {}
    conversions = package.manifest.metadata.get("conversions") or {}
    for backend, entry in conversions.items():
        if isinstance(entry, dict) and entry.get("report"):
            path = package.root / str(entry["report"])
            try:
                reports[backend] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                reports[backend] = {"error": f"{path}: {exc}"}
    return reports


def _size(package: Any, backend: str) -> int | None:
    path = package.local_artifact_path(backend)
    return path.stat().st_size if path is not None and path.is_file() else None


@app.command("validate")
def validate_cmd(
    package: str = PackageArgument,
    fetch: bool = typer.Option(False, "--fetch", help="Download URL artifacts to verify them."),
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Check the manifest, every artifact's sha256, and one real run on each available backend. Exit 1 on failure."""

    context = _context(config, set_, no_env)
    try:
        try:
            # heavy: models.loaded imports supervision (~3 s with its scipy, PIL)
            from coral_inference.models.loaded import resolve_reference

            checks = check_package(
                resolve_reference(context.catalog, package)[0], context, fetch=fetch
            )
        except ManifestError as exc:
            checks = [
                Check("manifest", "fail", f"{exc.path}: {problem}") for problem in exc.problems
            ]
        except Exception as exc:  # a missing package is a failed check, reported the same way
            checks = [Check("package", "fail", str(exc))]
    finally:
        shutdown()
    if json_:
        print_json([c.as_dict() for c in checks])
    else:
        colour = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
        for c in checks:
            console.print(f"[{colour[c.status]}]{c.status:>4}[/] {c.name}: ", end="")
            console.print(c.detail, markup=False, highlight=False)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command("bench")
def bench_cmd(
    package: str = PackageArgument,
    backend: list[str] = typer.Option(
        [],
        "--backend",
        "-b",
        help="Backend(s) to measure (default: every available one with an artifact).",
    ),
    frames: int = typer.Option(50, "--frames", "-n", min=1, help="Timed frames per backend."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed frames first."),
    size: str = typer.Option(
        "1280x720", "--size", help="Frame size WIDTHxHEIGHT of the synthetic test frame."
    ),
    image: Path | None = typer.Option(
        None, "--image", help="Use this image instead of a synthetic scene."
    ),
    confidence: float = typer.Option(
        0.25,
        "--confidence",
        min=0.0,
        max=1.0,
        help="Detection threshold (decode time depends on it).",
    ),
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Per-stage latency medians (preprocess, inference, decode) and throughput on each available backend."""
    # heavy: models.bench (via models.detector) imports supervision (~3 s with its scipy, PIL)
    from coral_inference.models.bench import bench_detector

    # heavy: models.detector imports supervision (~3 s with its scipy, PIL)
    from coral_inference.models.detector import Detector

    frame = _bench_frame(image, size)
    context = _context(config, set_, no_env)
    results, skipped = [], []
    try:
        pkg = _package(context, package)
        names = backend or [n for n in context.backends.names() if n in pkg.backends]
        with _progress(json_) as progress:
            for name in names:
                adapter = context.backends.get(name)
                probe = adapter.probe()
                if not probe.available or name not in pkg.backends:
                    skipped.append(
                        {
                            "backend": name,
                            "reason": probe.reason if not probe.available else "no artifact",
                        }
                    )
                    continue
                detector = Detector(pkg, adapter.prepare_session(pkg))
                task = progress.add_task(f"{pkg.name} on {name}", total=frames)
                try:
                    results.append(
                        bench_detector(
                            detector,
                            frame,
                            frames=frames,
                            warmup=warmup,
                            backend=name,
                            confidence=confidence,
                            progress=lambda n, t=task: progress.advance(t, n),
                        )
                    )
                finally:
                    detector.close()
    finally:
        shutdown()
    if json_:
        print_json({"results": [r.as_dict() for r in results], "skipped": skipped})
        return
    table = Table(
        "backend",
        "preprocess ms",
        "inference ms",
        "decode ms",
        "total ms (p95)",
        "fps",
        "fps pooled",
        "boxes",
        title=f"{package}: {frame.shape[1]}x{frame.shape[0]} frame, {frames} frames, "
        f"medians, confidence {confidence}",
    )
    for r in results:
        table.add_row(
            r.backend,
            f"{r.preprocess.p50_ms:.2f}",
            f"{r.inference.p50_ms:.2f}",
            f"{r.decode.p50_ms:.2f}",
            f"{r.total.p50_ms:.2f} ({r.total.p95_ms:.2f})",
            f"{r.sequential_fps:.1f}",
            f"{r.concurrent_fps:.1f} x{r.concurrency}",
            f"{r.detections:.1f}",
        )
    console.print(table)
    for s in skipped:
        console.print(f"[dim]skipped {s['backend']}: {s['reason']}[/dim]")


def _progress(quiet: bool) -> Progress:
    """The commands' step bar on stderr (off with --json), gone when the step is done."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    )


def _bench_frame(image: Path | None, size: str):
    # heavy: OpenCV (cv2); keeps `coral-runtime --help` from loading it
    import cv2

    if image is not None:
        frame = cv2.imread(str(image))
        if frame is None:
            err_console.print(f"[red]error:[/red] {image}: not a readable image")
            raise typer.Exit(2)
        return frame
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        err_console.print(
            f"[red]error:[/red] --size {size!r}: expected WIDTHxHEIGHT, e.g. 1280x720"
        )
        raise typer.Exit(2) from None
    # coral_inference.demo's scenes import OpenCV (cv2)
    from coral_inference.demo import random_still

    return random_still(2024, width, height).image


@app.command("convert")
def convert_cmd(
    package: str = PackageArgument,
    target: str | None = typer.Option(
        None, "--target", help="SoC to build for (default: convert.rknn.target_platform or rk3588)."
    ),
    onnx: Path | None = typer.Option(
        None,
        "--onnx",
        help="ONNX file to convert (default: convert.rknn.onnx, else the onnxruntime artifact).",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write the .rknn (default: inside the package)."
    ),
    quantize: bool | None = typer.Option(
        None,
        "--int8/--no-int8",
        "--quantize/--no-quantize",
        help="int8 quantisation (calibrated on --calibration).",
    ),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help="Your own frames: a folder of images, a video, or a Coral recording. Every 5th frame is held out for the parity check.",
    ),
    dataset: Path | None = typer.Option(
        None,
        "--dataset",
        help="A ready calibration list (one image path per line); skips the parity check unless --calibration is given too.",
    ),
    gate: list[str] | None = typer.Option(
        None,
        "--gate",
        help="What the .rknn must reach against the ONNX model to join the package: a number sets "
        "every gated metric of the task, METRIC=VALUE one of them (repeatable). Defaults: "
        "detection box_map50 0.95; segmentation mask_map50 0.90 and box_map50 0.95; keypoints "
        "keypoint_pck 0.90 (PCK@0.05) and box_map50 0.95; OBB obb_map50 0.95; classification "
        "top1_agreement 0.95 and top5_overlap 0.90 (multi-label: label_agreement 0.95 and "
        "top5_overlap 0.90).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Add the .rknn even under the gate (recorded in the manifest with the report).",
    ),
    confidence: float = typer.Option(
        0.25, "--confidence", min=0.0, max=1.0, help="Detection threshold of the parity check."
    ),
    frames_limit: int = typer.Option(
        300, "--frames", min=2, help="At most this many frames are read from --calibration."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Show rknn-toolkit2's log."),
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Build a .rknn, check it against the ONNX model on held-out frames, add it only if it passes the gate."""

    try:
        gates = _parse_gates(gate)
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    context = _context(config, set_, no_env)
    try:
        pkg = _package(context, package)
    finally:
        shutdown()
    plan_dataset = dataset if dataset is not None else (calibration if quantize else None)
    try:
        plan = plan_rknn_build(
            pkg,
            target_platform=target,
            onnx=onnx,
            output=output,
            quantize=quantize,
            dataset=plan_dataset,
        )
    except ConversionError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    standin = bool(os.environ.get("CORAL_RKNN_CONVERTER"))
    if not standin and not rknn_toolkit_available():
        if json_:
            print_json({"converted": False, "error": INSTALL_HINT, "plan": _plan_dict(plan)})
        else:
            err_console.print(f"[red]cannot convert:[/red] {INSTALL_HINT}", highlight=False)
        raise typer.Exit(2)
    if (
        calibration is None and dataset is not None
    ):  # the old unchecked path: a ready list, no frames to compare on
        try:
            path = build_rknn(plan, verbose=verbose)
        except ConversionError as exc:
            err_console.print(f"[red]conversion failed:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
        digest = sha256_of(path)
        if json_:
            print_json(
                {
                    "converted": True,
                    "checked": False,
                    "rknn": str(path),
                    "sha256": digest,
                    "plan": _plan_dict(plan),
                    "manifest_entry": plan.manifest_entry(pkg.root, digest),
                }
            )
            return
        console.print(
            f"wrote {path} for {plan.target_platform} (no parity check: give --calibration DIR|VIDEO); "
            f"add to {pkg.manifest_path}:",
            soft_wrap=True,
        )
        console.print(plan.manifest_snippet(pkg.root, digest), markup=False, highlight=False)
        return
    notes = []
    with _progress(json_) as progress:
        try:
            if calibration is not None:
                task = progress.add_task(f"reading frames from {calibration}", total=None)
                frames = load_frames(
                    calibration,
                    frames_limit,
                    progress=lambda n, total: progress.update(task, completed=n, total=total),
                )
            else:
                # coral_inference.demo's scenes import OpenCV (cv2)
                from coral_inference.demo import random_still

                frames = [random_still(seed, 960, 540).image for seed in range(10)]
                notes.append(
                    "no --calibration: compared on synthetic frames; give your own frames for a faithful check"
                )
            step = progress.add_task(
                f"converting for {plan.target_platform} and comparing", total=None
            )
            result = convert_with_gate(
                pkg,
                plan,
                frames=frames,
                gate=gates,
                force=force,
                converter=converter_from_env(),
                confidence=confidence,
                verbose=verbose,
                notes=notes,
            )
            progress.update(step, completed=1, total=1)
        except GateRefusedError as exc:
            progress.stop()
            if json_:
                print_json(
                    {
                        "converted": False,
                        "refused": True,
                        "error": str(exc),
                        "report": exc.report.as_dict(),
                        "report_path": str(exc.report_path),
                    }
                )
            else:
                _print_report(exc.report)
                err_console.print(f"[red]refused:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ConversionError as exc:
            progress.stop()
            err_console.print(
                f"[red]conversion failed:[/red] {exc}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None
    entry = plan.manifest_entry(pkg.root, sha256_of(result.rknn))
    if json_:
        print_json(
            {
                "converted": True,
                "checked": True,
                "rknn": str(result.rknn),
                "report": result.report.as_dict(),
                "report_path": str(result.report_path),
                "added": result.added,
                "package": str(pkg.root),
                "manifest_entry": entry,
            }
        )
        return
    _print_report(result.report)
    if not result.added:
        console.print(
            f"wrote {result.rknn} (report {result.report_path}); it is outside {pkg.root} or the package "
            f"is bundled with Coral, so the manifest was not changed — add to a copy of it:",
            soft_wrap=True,
        )
        console.print(
            plan.manifest_snippet(pkg.root, entry["sha256"]), markup=False, highlight=False
        )
        return
    verdict = (
        "[yellow]added under the gate (--force)[/yellow]"
        if result.report.forced
        else "[green]added[/green]"
    )
    console.print(
        f"{verdict} {result.rknn} to {pkg.manifest_path} (report {result.report_path})",
        soft_wrap=True,
    )


def _parse_gates(values: list[str] | None) -> float | dict[str, float] | None:
    """``--gate 0.9`` (every gated metric) or ``--gate mask_map50=0.85`` (repeatable)."""
    if not values:
        return None
    named: dict[str, float] = {}
    for value in values:
        metric, sep, number = value.partition("=")
        try:
            threshold = float(number if sep else metric)
        except ValueError:
            raise ValueError(
                f"--gate {value}: give a number (every gated metric) or METRIC=NUMBER"
            ) from None
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"--gate {value}: a threshold lies between 0 and 1")
        if not sep:
            if len(values) > 1:
                raise ValueError(
                    f"--gate {value}: a bare number sets every metric; name the metric "
                    f"(METRIC=NUMBER) when giving several"
                )
            return threshold
        named[metric.strip()] = threshold
    return named


def _print_report(report: Any) -> None:

    state = "pass" if report.passed else "FAIL"
    counts = (
        ""
        if report.task.startswith("classification")
        else f"; detections ONNX {report.reference_detections}, converted {report.candidate_detections}"
    )
    console.print(
        f"parity of the {report.task} model on {report.frames} held-out frames: "
        f"{report.summary()} {state}{counts}",
        soft_wrap=True,
        highlight=False,
    )
    if report.cosine:
        console.print("output cosine similarity: " + ", ".join(f"{c:.4f}" for c in report.cosine))
    for difference in report.differences[:10]:
        console.print(
            "  " + difference_text(difference),
            markup=False,
            highlight=False,
        )
    if len(report.differences) > 10:
        console.print(f"  ... {len(report.differences) - 10} more differences in the JSON report")


def _plan_dict(plan: Any) -> dict[str, Any]:
    return {
        "onnx": str(plan.onnx),
        "output": str(plan.output),
        "target_platform": plan.target_platform,
        "mean_values": plan.mean_values,
        "std_values": plan.std_values,
        "quantize": plan.quantize,
        "head": plan.head.type,
    }


@app.command("import")
def import_cmd(
    source: str = typer.Argument(
        ...,
        help="An .onnx export, an .rknn (with --onnx), an inference cache directory, "
        "or a Roboflow model id (project/version or workspace/project/version).",
    ),
    name: str | None = typer.Option(
        None, "--name", help="Package name (default: from the source)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Package directory to write (default: ./NAME)."
    ),
    classes: Path | None = typer.Option(
        None, "--classes", help="Class names, one per line (or a YAML names list)."
    ),
    numbered_classes: bool = typer.Option(
        False,
        "--numbered-classes",
        help="Name classes class0, class1, ... when the model carries none.",
    ),
    onnx: Path | None = typer.Option(
        None, "--onnx", help="The ONNX an .rknn SOURCE was converted from."
    ),
    rknn: Path | None = typer.Option(
        None, "--rknn", help="An .rknn built from this ONNX, added as the rknn artifact."
    ),
    rknn_box_units: str = typer.Option(
        "pixels",
        "--rknn-box-units",
        help="pixels, or normalized for Ultralytics' int8 RKNN builds.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing package directory."),
    split: bool = typer.Option(
        False,
        "--split-head",
        help="Also write the nine-output (rknn_model_zoo) rewrite of a detect export as the RKNN conversion source (needed for --int8).",
    ),
    config: Path | None = ConfigOption,
    set_: list[str] = SetOption,
    no_env: bool = NoEnvOption,
    json_: bool = JsonOption,
) -> None:
    """Build a validated package from a model file or a Roboflow model, in one command."""

    if rknn_box_units not in ("pixels", "normalized"):
        err_console.print(
            f"[red]error:[/red] --rknn-box-units {rknn_box_units!r}: use pixels or normalized"
        )
        raise typer.Exit(2)
    context = _context(config, set_, no_env)
    try:
        result = import_model(
            source,
            name=name,
            out=out,
            classes_file=classes,
            numbered_classes=numbered_classes,
            onnx=onnx,
            rknn=rknn,
            rknn_box_units=rknn_box_units,
            force=force,
            context=context,
            split=split,
            fetcher=lambda model_id: fetch_roboflow_model(model_id, progress=not json_),
        )
    except ModelPackageError as exc:
        if json_:
            print_json({"imported": False, "error": str(exc), "type": type(exc).__name__})
        else:
            err_console.print(
                f"[red]cannot import:[/red] {exc}", highlight=False, markup=False, soft_wrap=True
            )
        raise typer.Exit(2) from None
    finally:
        shutdown()
    package = result.package
    if json_:
        print_json({"imported": True, **result.as_dict()})
        return
    console.print(
        f"[green]imported[/green] {source} -> {package.root}", highlight=False, soft_wrap=True
    )
    console.print(
        f"  task {getattr(package.manifest, 'task', 'object-detection')}, head {package.head.type}, "
        f"input {package.input.width}x{package.input.height} {package.input.resize}, "
        f"{len(package.classes)} classes: {', '.join(package.classes[:8])}"
        f"{' ...' if len(package.classes) > 8 else ''}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for note in result.notes:
        console.print(f"  note: {note}", highlight=False, markup=False, soft_wrap=True)
    for check in result.checks:
        console.print(
            f"  {check.status:>4} {check.name}: {check.detail}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    console.print("use it:", highlight=False)
    console.print(
        f"  coral-runtime models inspect {package.root}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f'  in a workflow: "model_id": "coral/{package.root}" (or add it to the config\'s models section)',
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"  for the NPU: coral-runtime models convert {package.root} --target rk3588",
        highlight=False,
        markup=False,
    )


toolkit_app = typer.Typer(
    help="rknn-toolkit2, Rockchip's converter, in an environment of its own.", no_args_is_help=True
)
app.add_typer(toolkit_app, name="toolkit")


@toolkit_app.command("install")
def toolkit_install_cmd(
    version: str = typer.Option("2.3.2", "--version", help="rknn-toolkit2 version."),
    python: str | None = typer.Option(
        None, "--python", help="Python 3.8-3.12 for the environment (default: this one if it fits)."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even if it is already installed."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the commands without running them."
    ),
    json_: bool = JsonOption,
) -> None:
    """Build rknn-toolkit2's separate environment (under ~/.cache/coral) for models convert."""

    if dry_run:
        try:
            commands = install_commands(version, find_python(python), toolkit_dir(version))
        except ToolkitInstallError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
        if json_:
            print_json({"target": str(toolkit_dir(version)), "commands": commands})
        else:
            for command in commands:
                console.print(" ".join(command), markup=False, highlight=False, soft_wrap=True)
        return
    try:
        target = install_toolkit(
            version,
            python=python,
            force=force,
            say=lambda line: err_console.print(line, markup=False, highlight=False),
        )
    except ToolkitInstallError as exc:
        if json_:
            print_json({"installed": False, "error": str(exc)})
        else:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if json_:
        print_json(
            {"installed": True, "target": str(target), "python": str(target / "bin" / "python")}
        )
    else:
        console.print(f"rknn-toolkit2 {version}: {target}", soft_wrap=True)
