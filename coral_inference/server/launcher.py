"""``coral-runtime server start``: Roboflow's inference server, its stream manager and Coral.

What Roboflow's CPU image does (``docker/config/cpu_http.py`` in roboflow/inference:
start the stream manager process, build ``HttpInterface`` over a model manager),
in this process, with uvicorn, plus Coral's defaults:

* ``WORKFLOWS_PLUGINS`` gains ``coral_workflows``; ``CORAL_CONFIG`` is the given file;
* offline: no version check and no model-monitoring pingback unless the user set them;
* the stream manager on (``ENABLE_STREAM_API``), on a free loopback port of its own;
* Coral's routes mounted on the server's app (:mod:`coral_inference.server.routes`):
  ``/coral/metrics`` (every pipeline's series in one scrape) and the live preview;
* the console shows Coral's lines; upstream warnings and per-request client lines
  go to the log file (:func:`configure_logging`).

The server's own storage defaults are absolute (``coral_inference.server.plugin``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import partial
from multiprocessing import Process
from pathlib import Path
from typing import Any

from coral_inference import compat
from coral_inference.server.plugin import data_dir
from coral_inference.workflow_check import with_plugins

logger = logging.getLogger("coral_inference.server")

PLUGIN = "coral_workflows"
CONSOLE_LOGGERS = ("coral_inference", "coral_workflows", "coral")
# The inference server's static landing page is mounted from paths relative to its
# working directory (its Docker image runs from /app); the pip distribution has none.
LANDING_DIRS = ("inference/landing/out/static", "inference/landing/out/_next/static")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 9001
    config: Path | None = None
    stream_manager: bool = True
    log_file: Path | None = None
    warm_pipelines: int = 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class _CoralConsole(logging.Filter):
    """Coral's records at INFO and above; everything else only from ERROR up."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] in CONSOLE_LOGGERS:
            return True
        return record.levelno >= logging.ERROR and record.name != "py.warnings"


def configure_logging(log_file: Path, *, level: int = logging.INFO) -> None:
    """Console: Coral's own lines; log file: everything (warnings, httpx, uvicorn access).

    Also used by ``coral-runtime demo``. Python warnings are captured into the log
    (``py.warnings``) instead of being printed.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s")
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(formatter)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(_CoralConsole())
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(file_handler)
    root.addHandler(console)
    root.setLevel(level)
    logging.captureWarnings(True)
    warnings.simplefilter("default")


def tame_upstream_loggers() -> None:
    """inference and friends attach their own console handlers: route them through the root's."""
    for name in (
        "inference",
        "streamvision",
        "roboflow_workflows",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "httpx",
        "httpcore",
    ):
        upstream = logging.getLogger(name)
        for handler in list(upstream.handlers):
            upstream.removeHandler(handler)
        upstream.propagate = True


def server_environment(
    settings: ServerSettings, environ: dict[str, str] | None = None
) -> dict[str, str]:
    """Variables the launcher sets (the user's own values win, except the plugin list)."""
    env = dict(os.environ) if environ is None else environ
    values = {"WORKFLOWS_PLUGINS": with_plugins(env.get("WORKFLOWS_PLUGINS"), [PLUGIN])}
    defaults = {
        "DISABLE_VERSION_CHECK": "True",
        "METRICS_ENABLED": "False",
        "ENABLE_STREAM_API": "True" if settings.stream_manager else "False",
        "STREAM_MANAGER_HOST": "127.0.0.1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    }
    run_dir = Path(tempfile.mkdtemp(prefix="coral-server-"))
    defaults["CORAL_PROMETHEUS_DIR"] = str(run_dir / "prometheus")
    defaults["CORAL_PREVIEW_DIR"] = str(run_dir / "preview")
    if "STREAM_MANAGER_PORT" not in env:
        defaults["STREAM_MANAGER_PORT"] = str(free_port())
    for key, value in defaults.items():
        if key not in env:
            values[key] = value
    if settings.config is not None:
        values["CORAL_CONFIG"] = str(settings.config.resolve())
    return values


BOOTSTRAP_MODULE = "inference.core.interfaces.stream_manager.manager_app.bootstrap"


def start_stream_manager(warm_pipelines: int) -> Process:
    """The stream manager process, started as Roboflow's CPU image of this release starts it."""
    try:
        bootstrap = compat.import_module(BOOTSTRAP_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name is None or not BOOTSTRAP_MODULE.startswith(exc.name):
            raise
        # Before the stream stack moved to streamvision (inference < 1.8), the image ran
        # the manager app's start() with the configuration read from the environment.
        app = compat.import_module("inference.core.interfaces.stream_manager.manager_app.app")
        target = partial(app.start, expected_warmed_up_pipelines=warm_pipelines)
    else:
        streams = compat.import_module("inference.core.interfaces.streams_configuration")
        target = partial(
            bootstrap.run_stream_manager,
            configuration=streams.server_streams_configuration(),
            host_descriptor=streams.LEGACY_PIPELINE_HOST_DESCRIPTOR,
            expected_warmed_up_pipelines=warm_pipelines,
        )
    process = Process(target=target, name="inference-stream-manager")
    process.start()
    return process


def build_app() -> Any:
    """inference's ``HttpInterface`` app (as its CPU image builds it) with Coral's routes."""
    # routes: the runtime stack (numpy, prometheus_client, backends: ~0.5 s)
    from coral_inference.server.routes import mount_coral_routes

    managers = compat.import_module("inference.core.managers.base")
    registries = compat.import_module("inference.core.registries.roboflow")
    fixed_cache = compat.import_module("inference.core.managers.decorators.fixed_size_cache")
    env = compat.import_module("inference.core.env")
    model_types = compat.import_module("inference.models.utils").ROBOFLOW_MODEL_TYPES
    http_api = compat.import_module("inference.core.interfaces.http.http_api")
    manager = managers.ModelManager(model_registry=registries.RoboflowModelRegistry(model_types))
    manager = fixed_cache.WithFixedSizeCache(manager, max_size=env.MAX_ACTIVE_MODELS)
    app = http_api.HttpInterface(manager).app
    mount_coral_routes(app)
    return app


def prepare_workdir() -> Path:
    """A working directory with the landing-page folders the server's app mounts.

    The current one when it has them (Roboflow's image runs from /app), else a stub.
    """
    if all(Path(rel).is_dir() for rel in LANDING_DIRS):
        return Path.cwd()
    workdir = Path(tempfile.mkdtemp(prefix="coral-inference-server-"))
    for rel in LANDING_DIRS:
        (workdir / rel).mkdir(parents=True, exist_ok=True)
    (workdir / "inference/landing/out/index.html").write_text(
        "<!doctype html><title>inference server with Coral</title>"
        "<p>Roboflow inference server with Coral. API docs: <a href='/docs'>/docs</a>.</p>",
        encoding="utf-8",
    )
    return workdir


def stop_stream_manager(manager: Process, timeout_s: float = 60.0) -> None:
    """SIGTERM the manager (it drains and joins each pipeline); kill what is left after a timeout.

    Never blocks longer: a pipeline can hang in its own termination (inference 1.8.3: a
    file source with the ``WAIT`` strategy stopped mid-video waits forever for its
    decoder, blocked on the full buffer), and then its process and the manager are killed.
    """
    if manager.exitcode is not None:
        return
    logger.info("stopping the stream manager (pipelines finish their recordings)")
    manager.terminate()
    deadline = time.monotonic() + timeout_s
    while manager.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if manager.exitcode is None and manager.pid is not None:
        # psutil only on this path: a stream manager that outlived its deadline
        import psutil

        try:
            left = psutil.Process(manager.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            left = []
        logger.warning(
            "the stream manager did not stop within %.0f s (a pipeline is stuck stopping); "
            "killing it and %d pipeline process(es)",
            timeout_s,
            len(left),
        )
        for child in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        manager.kill()
    manager.join(10)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_server(settings: ServerSettings) -> None:
    """Start the stream manager and serve the HTTP app until Ctrl-C / SIGTERM."""
    # heavy: uvicorn (click, anyio, watchfiles: ~0.25 s), only when serving
    import uvicorn

    log_file = settings.log_file or data_dir() / "logs" / "inference-server.log"
    configure_logging(log_file)
    os.environ.update(server_environment(settings))
    # Until uvicorn installs its own handlers, SIGTERM unwinds through the finally below,
    # so the stream manager never outlives a launcher stopped while it starts.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    compat.load_inference_core()
    tame_upstream_loggers()
    os.chdir(prepare_workdir())
    manager = start_stream_manager(settings.warm_pipelines) if settings.stream_manager else None
    try:
        app = build_app()
        tame_upstream_loggers()
        info = compat.inference_info()
        logger.info(
            "inference %s with Coral on http://%s:%d (stream manager %s; config %s; log %s)",
            info.version if info is not None else "?",
            settings.host,
            settings.port,
            f"on 127.0.0.1:{os.environ['STREAM_MANAGER_PORT']}" if manager else "off",
            os.environ.get("CORAL_CONFIG", "defaults"),
            log_file,
        )
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=20,
        )
    finally:
        if manager is not None:
            stop_stream_manager(manager)
        with contextlib.suppress(Exception):
            # runtime (numpy, prometheus_client, backends: ~0.7 s) kept out of the launcher's import
            from coral_inference.runtime import shutdown

            shutdown()
        for name in ("CORAL_PROMETHEUS_DIR", "CORAL_PREVIEW_DIR"):
            run_dir = Path(os.environ.get(name, "")).parent
            if run_dir.name.startswith("coral-server-"):
                shutil.rmtree(run_dir, ignore_errors=True)
