"""Coral's hooks for stream-manager workers, no server: identity, shutdown, config, metrics."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from coral_inference import compat
from coral_inference.config.loader import ConfigError
from coral_inference.runtime import process as coral_process
from coral_inference.server import metrics_export, plugin, worker

fork = multiprocessing.get_context("fork")


def _exit_hook_child(marker: str) -> None:
    coral_process.install_exit_shutdown(extra=lambda: Path(marker).write_text("shut down"))


def test_exit_shutdown_runs_in_a_multiprocessing_child(tmp_path):
    """A multiprocessing child ends with os._exit: atexit alone would never finalise recordings."""
    marker = tmp_path / "marker"
    child = fork.Process(target=_exit_hook_child, args=(str(marker),))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert marker.read_text() == "shut down"


def _graceful_child(marker: str, ready: str) -> None:
    stop = {"flag": False}

    def own_handler(
        signum, frame
    ):  # like the stream manager's worker: stop the loop, return from run
        stop["flag"] = True
        Path(marker).write_text("own handler first;")

    signal.signal(signal.SIGTERM, own_handler)

    def extra() -> None:
        with open(marker, "a") as fh:
            fh.write("shutdown after drain")

    coral_process.install_exit_shutdown(extra=extra)
    Path(ready).touch()
    deadline = time.monotonic() + 20
    while not stop["flag"] and time.monotonic() < deadline:
        time.sleep(0.01)


def test_sigterm_lets_the_process_own_handler_drain_before_the_shutdown(tmp_path):
    marker, ready = tmp_path / "marker", tmp_path / "ready"
    child = fork.Process(target=_graceful_child, args=(str(marker), str(ready)))
    child.start()
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGTERM)
    child.join(30)
    assert child.exitcode == 0
    assert marker.read_text() == "own handler first;shutdown after drain"


def _report_pipeline_id(queue) -> None:
    queue.put(worker.stream_manager_pipeline_id())


def _stream_manager_worker_process(pipeline_id: str) -> multiprocessing.Process:
    """The process class the installed inference's stream manager runs each pipeline in."""
    info = compat.inference_info()
    assert info is not None
    if info.stream_module == "streamvision":
        from streamvision.stream_manager.manager_app.bootstrap import PipelineManagerProcess

        return PipelineManagerProcess(
            pipeline_id=pipeline_id,
            command_queue=fork.Queue(),
            responses_queue=fork.Queue(),
            configuration=None,
            host_descriptor=None,
            manager_class="x:y",  # type: ignore[arg-type]
        )
    # inference < 1.8: the manager process class itself
    legacy = compat.import_module(
        "inference.core.interfaces.stream_manager.manager_app.inference_pipeline_manager"
    )
    return legacy.InferencePipelineManager(
        pipeline_id=pipeline_id, command_queue=fork.Queue(), responses_queue=fork.Queue()
    )


def test_the_stream_manager_pipeline_id_is_found_in_its_worker_process():
    queue = fork.Queue()
    process = _stream_manager_worker_process("8b1c-pipeline")
    process.run = lambda: _report_pipeline_id(queue)  # type: ignore[method-assign]
    process.start()
    assert queue.get(timeout=30) == "8b1c-pipeline"
    process.join(30)
    # A plain process (or this one) is not a stream-manager worker.
    plain = fork.Process(target=_report_pipeline_id, args=(queue,))
    plain.start()
    assert queue.get(timeout=30) is None
    plain.join(30)
    assert worker.stream_manager_pipeline_id() is None


def test_storage_defaults_resolve_to_an_absolute_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    if os.geteuid() == 0:
        assert plugin.data_dir(env) == Path("/var/lib/coral")
        env["CORAL_DATA_DIR"] = str(tmp_path / "xdg" / "coral")
    assert plugin.data_dir(env) == tmp_path / "xdg" / "coral"
    storage = plugin.load_server_config(env).descriptor.storage
    assert storage.root == tmp_path / "xdg" / "coral"
    assert storage.recordings == tmp_path / "xdg" / "coral" / "recordings"
    assert storage.results.is_absolute()
    # A path the config sets stays as set.
    config = tmp_path / "coral.yaml"
    config.write_text("storage:\n  recordings: /srv/recordings\n")
    storage = plugin.load_server_config({**env, "CORAL_CONFIG": str(config)}).descriptor.storage
    assert storage.recordings == Path("/srv/recordings")
    assert storage.root == tmp_path / "xdg" / "coral"


def test_a_bad_config_names_the_file_and_the_dotted_path(tmp_path):
    config = tmp_path / "coral.yaml"
    config.write_text("recording:\n  crf: 99\n")
    with pytest.raises(ConfigError) as caught:
        plugin.load_server_config({"CORAL_CONFIG": str(config), "CORAL_DATA_DIR": str(tmp_path)})
    text = "\n".join(caught.value.problems)
    assert "recording.crf" in text and str(config) in text


def _write_export(directory: str, key: str, value: float, ready: str, release: str) -> None:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    Gauge("coral_pipeline_fps", "fps", ["pipeline_id"], registry=registry).labels(key).set(value)
    export = metrics_export.WorkerExport(registry, Path(directory), key, interval_s=0.05)
    Path(ready).touch()
    deadline = time.monotonic() + 20
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    export.close()


def test_worker_series_merge_into_one_scrape_and_leave_with_their_worker(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    release = tmp_path / "release"
    children = []
    for key, value in (("pipe-a", 12.5), ("pipe-b", 7.0)):
        ready = tmp_path / f"ready-{key}"
        child = fork.Process(
            target=_write_export,
            args=(str(tmp_path / "prom"), key, value, str(ready), str(release)),
        )
        child.start()
        children.append((child, ready))
    for _, ready in children:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    time.sleep(0.2)
    # A file left by a process that no longer exists is not scraped.
    (tmp_path / "prom" / "ghost-999999999.prom").write_text(
        'coral_pipeline_fps{pipeline_id="ghost"} 1.0\n'
    )
    text = metrics_export.scrape(tmp_path / "prom").decode()
    samples = {
        s.labels["pipeline_id"]: (s.value, s.labels["pipeline"])
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "coral_pipeline_fps"
    }
    assert samples == {"pipe-a": (12.5, "pipe-a"), "pipe-b": (7.0, "pipe-b")}
    assert text.count("# TYPE coral_pipeline_fps gauge") == 1
    release.touch()
    for child, _ in children:
        child.join(30)
    assert "coral_pipeline_fps" not in metrics_export.scrape(tmp_path / "prom").decode()


def test_a_prometheus_port_in_use_is_a_clear_sink_error_and_workers_never_open_it():
    import socket

    from prometheus_client import CollectorRegistry

    from coral_inference.config.schema import RuntimeDescriptor
    from coral_inference.metrics import build_metrics_hub
    from coral_inference.metrics.hub import SinkStartError
    from coral_inference.metrics.prometheus import PrometheusSink

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(
            SinkStartError, match=rf"metrics sink 'prom'.*127.0.0.1:{port}.*metrics.sinks.prom.port"
        ):
            PrometheusSink("prom", CollectorRegistry(), port=port)
        config = RuntimeDescriptor.model_validate(
            {"metrics": {"sinks": {"prom": {"type": "prometheus", "port": port}}}}
        )
        coral_process.set_pipeline_identity("pipe-a")
        try:
            # a worker: series go to the export dir, no port
            hub = build_metrics_hub(
                config.metrics, storage_root=config.storage.root, worker_key="pipe-a"
            )
            hub.emit("people", {"in": 1})
            hub.close()
        finally:
            coral_process.clear_pipeline_identity()


def _log_some_lines(log_file: str, console_file: str) -> None:
    import logging
    import sys
    import warnings

    from coral_inference.server.launcher import configure_logging

    sys.stderr = open(console_file, "w")  # noqa: SIM115 - the child exits right after
    configure_logging(Path(log_file))
    logging.getLogger("coral_inference.server").info("coral line")
    logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1/ "HTTP/1.1 200 OK"')
    warnings.warn("an upstream deprecation", DeprecationWarning, stacklevel=1)
    logging.getLogger("uvicorn.error").error("an upstream error")
    sys.stderr.flush()


def test_the_console_shows_coral_lines_and_the_log_file_everything(tmp_path):
    log_file, console_file = tmp_path / "server.log", tmp_path / "console.txt"
    child = fork.Process(target=_log_some_lines, args=(str(log_file), str(console_file)))
    child.start()
    child.join(30)
    console, log = console_file.read_text(), log_file.read_text()
    assert "coral line" in console and "an upstream error" in console
    assert "HTTP Request" not in console and "an upstream deprecation" not in console
    for line in ("coral line", "HTTP Request", "an upstream deprecation", "an upstream error"):
        assert line in log


def _stuck_manager(child_pid_file: str) -> None:
    import signal as signals
    import subprocess
    import sys

    signals.signal(signals.SIGTERM, lambda *_: None)  # like a manager joining a stuck pipeline
    stuck = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
        ]
    )
    Path(child_pid_file).write_text(str(stuck.pid))
    time.sleep(60)


def test_a_stream_manager_stuck_in_termination_is_killed_with_its_pipelines(tmp_path):
    from coral_inference.server.launcher import stop_stream_manager

    pid_file = tmp_path / "child"
    manager = multiprocessing.get_context("fork").Process(
        target=_stuck_manager, args=(str(pid_file),)
    )
    manager.start()
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    started = time.monotonic()
    stop_stream_manager(manager, timeout_s=1.0)
    assert time.monotonic() - started < 15
    assert manager.exitcode is not None
    deadline = time.monotonic() + 10
    while worker_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not worker_alive(child)


def worker_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
