"""The pipeline worker: one process runs one ``PipelineRunner`` for the web app's supervisor.

The supervisor (``coral_inference.pipelines.supervisor``) starts this module's
``worker_main`` in a process forked from a server that already imported
inference, and talks to it over one ``multiprocessing`` pipe:

* supervisor → worker: ``(command, request_id)`` with command ``pause``,
  ``resume`` or ``terminate``; the worker answers ``("reply", request_id, error)``;
* worker → supervisor: ``("hello", pid)``, then ``("started", status)``,
  ``("reconnecting", message)`` or ``("start_failed", message)``; every
  ``status_interval_s`` a ``("status", status)`` (also the heartbeat), the
  latest results as ``("result", payload)`` at most a few times a second, and
  ``("channels", {channel: shared_memory_name})`` whenever the set of preview
  channels that ``coral/webrtc_preview@v1`` blocks publish in this worker changes.

The preview frame goes through shared memory (``FrameSlot``), never through the
pipe; so do the frames of those blocks' channels: the block hands them to
``coral_inference.server.preview.WorkerPreview`` (one slot per channel, the same
handover the inference server's stream-manager workers use), the worker announces
the slots and the web process attaches to them read-only. The worker's stdout/stderr go to its own log file, with ``faulthandler`` on,
so even a native crash leaves its last lines for the supervisor to report.

Before the first frame the worker declares its pipeline identity (recordings,
metrics and preview channels are keyed by it) and installs the exit shutdown
(recordings finalised on SIGTERM).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coral_inference.media.frame_slot import FrameSlot
from coral_inference.pipelines.runner import (
    PipelineRunner,
    PipelineStartError,
    is_source_unavailable,
)
from coral_inference.pipelines.sources_policy import unreachable
from coral_inference.pipelines.status import PipelineState, RunnerStatus
from coral_inference.results import to_jsonable
from coral_inference.runtime import init, shutdown
from coral_inference.runtime.process import install_exit_shutdown, set_pipeline_identity

if TYPE_CHECKING:
    from coral_inference.runtime.context import RuntimeContext
    from coral_inference.server.preview import WorkerPreview

logger = logging.getLogger("coral_inference.pipelines.worker")

RESULT_INTERVAL_S = 0.25
TERMINATE_JOIN_S = 5.0
EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_START_FAILED = 3
LOG_MAX_BYTES = 2 * 1024 * 1024
# How long a new runner may take to open its source before the worker says it started.
SOURCE_OPEN_WAIT_S = 3.0


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable (sent to the forked process)."""

    pipeline_id: str
    config: dict[str, Any]  # RuntimeDescriptor as JSON-ready data
    workflow: dict[str, Any]
    source: str | int
    name: str | None = None
    max_fps: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    preview_output: str | None = None
    frame_slot: str | None = None  # shared-memory name of the preview slot
    log_path: str | None = None
    npu_core_mask: str | None = None
    cpu_affinity: tuple[int, ...] | None = None
    start_paused: bool = False
    status_interval_s: float = 0.5
    reconnect_backoff_s: float = 1.0
    reconnect_backoff_max_s: float = 30.0
    own_session: bool = True


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Entry point of the worker process; never returns (exits with the pipeline's outcome)."""
    _redirect_output(spec.log_path)
    if spec.own_session:
        # Its own session, so its own scheduling group where the kernel groups by session
        # (CONFIG_SCHED_AUTOGROUP, on by default in most distributions): the web process then
        # keeps its share of the CPU against each worker as a whole, however many threads a
        # pipeline runs (decoder, ONNX Runtime pool, encoder...), instead of one share per
        # thread. A terminal's Ctrl-C reaches the web process only, which stops the workers.
        try:
            os.setsid()
        except OSError as exc:
            logger.debug("pipeline %s: setsid: %s", spec.pipeline_id, exc)
    # A forkserver child inherits "forkserver" as its default start method; code inside the
    # pipeline that starts processes should behave as it did in one process (fork on Linux),
    # not start a forkserver of its own per worker.
    multiprocessing.set_start_method("fork", force=True)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    apply_cpu_affinity(spec)

    # Names are labels for people and need not be unique (two pipelines of one workflow file
    # share the default name): the id keeps their recordings, series and channels apart (13.1).
    set_pipeline_identity(
        spec.pipeline_id, f"{spec.name}-{spec.pipeline_id}" if spec.name else None
    )
    worker = _Worker(conn, spec)
    install_exit_shutdown(extra=worker.stop_pipeline)
    code = EXIT_FAILED
    try:
        code = worker.run()
    except BaseException:  # noqa: BLE001 - reported through the exit code and the log
        logger.exception("pipeline %s: worker failed", spec.pipeline_id)
    finally:
        try:
            shutdown()  # recordings finalised, metrics flushed
        except Exception:  # noqa: BLE001
            logger.exception("pipeline %s: shutdown", spec.pipeline_id)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    # inference's threads may be stuck in a hung block; they must not hold the exit.
    os._exit(code)


def apply_cpu_affinity(spec: WorkerSpec) -> None:
    """Run this worker (and the threads it starts after) on the cores of its placement."""
    if not spec.cpu_affinity:
        return
    try:
        os.sched_setaffinity(0, spec.cpu_affinity)
    except (OSError, AttributeError) as exc:
        logger.warning(
            "pipeline %s: CPU affinity %s not applied: %s",
            spec.pipeline_id,
            spec.cpu_affinity,
            exc,
        )


def worker_config(spec: WorkerSpec) -> dict[str, Any]:
    """The runtime configuration of this worker: the app's, with its NPU and CPU placement."""
    config = {**spec.config}
    backends = {**config.get("backends", {})}
    mask = spec.npu_core_mask
    if mask:
        rknn = {**backends.get("rknn", {})}
        cores = [c for c in mask.split("_") if c in ("0", "1", "2")]
        rknn.update(core_mask=mask, pool_cores=cores or ["0"], pool_size=max(1, len(cores)))
        backends["rknn"] = rknn
    ort = {**backends.get("onnxruntime", {})}
    if spec.cpu_affinity and not ort.get("intra_op_num_threads"):
        # ONNX Runtime sizes its pool from the machine, not the affinity: a worker on one core
        # of two ran two spinning threads there and half as many frames (measured, BENCHMARKS.md).
        ort["intra_op_num_threads"] = len(set(spec.cpu_affinity))
    if ort.get("allow_spinning") is None:
        # A pool that spins between runs takes the cores from this pipeline's decoder and
        # encoder and from other pipelines: off, one demo pipeline ran as fast on fewer
        # cores and two ran 1.3x one instead of 0.84x (BENCHMARKS.md).
        ort["allow_spinning"] = False
    backends["onnxruntime"] = ort
    if backends:
        config["backends"] = backends
    return config


class _Worker:
    def __init__(self, conn: Connection, spec: WorkerSpec):
        self.conn = conn
        self.spec = spec
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._runner: Any = None
        self._slot: Any = None
        self._channels: WorkerPreview | None = None
        self._announced: dict[str, str] = {}
        self._exit_code: int | None = None
        self._phase = "starting"  # starting | reconnecting | started
        self._phase_error: str | None = None
        self._result_sent_frame: int | None = None
        self._delay = spec.reconnect_backoff_s

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        self._send(("hello", os.getpid()))

        context = init(worker_config(self.spec), source=f"pipeline worker {self.spec.pipeline_id}")
        if self.spec.frame_slot:
            self._slot = FrameSlot.attach(self.spec.frame_slot)
        self._channels = channel_export(context, self.spec)
        starter = threading.Thread(
            target=self._start_loop, args=(context,), name="coral-worker-start", daemon=True
        )
        starter.start()
        interval = self.spec.status_interval_s
        next_status = 0.0
        next_result = 0.0
        while self._exit_code is None:
            try:
                if self.conn.poll(0.05):
                    self._handle(self.conn.recv())
            except (EOFError, OSError):  # the supervisor is gone: stop, do not run unsupervised
                self.stop_pipeline()
                return EXIT_FAILED
            now = time.monotonic()
            if now >= next_result:
                next_result = now + RESULT_INTERVAL_S
                self._send_result()
            if now >= next_status:
                next_status = now + interval
                self._announce_channels()
                self._send(("status", self.status()))
        self._send_result()
        self._send(("status", self.status()))
        return self._exit_code

    def _handle(self, message: Any) -> None:
        command, request_id = message
        error: str | None = None
        runner = self._runner
        try:
            if command == "terminate":
                self.stop_pipeline()
                self._exit_code = EXIT_FINISHED
            elif command in ("pause", "resume"):
                if runner is None or self._phase != "started":
                    raise _StateError(
                        f"pipeline {self.spec.pipeline_id} is {self._phase}, not running"
                    )
                getattr(runner, command)()
            else:
                raise _StateError(f"unknown worker command {command!r}")
        except Exception as exc:  # noqa: BLE001 - answered to the supervisor
            error = f"{type(exc).__name__}: {exc}"
        self._send(("reply", request_id, error))

    def stop_pipeline(self) -> None:
        self._stop.set()
        runner = self._runner
        if runner is not None:
            runner.terminate()
            if not runner.join(TERMINATE_JOIN_S):
                logger.warning(
                    "pipeline %s: its threads did not stop within %s s (a hung block?)",
                    self.spec.pipeline_id,
                    TERMINATE_JOIN_S,
                )

    # ------------------------------------------------------------------ starting

    def _start_loop(self, context: RuntimeContext) -> None:

        spec = self.spec
        self._delay = spec.reconnect_backoff_s
        while not self._stop.is_set():
            runner = PipelineRunner(
                context,
                spec.workflow,
                spec.source,
                pipeline_id=spec.pipeline_id,
                max_fps=spec.max_fps,
                workflows_parameters=spec.parameters,
                on_result=self._on_result,
            )
            self._runner = runner
            try:
                runner.start()
            except PipelineStartError as exc:
                cause = exc.__cause__ or exc
                message = f"{type(cause).__name__}: {cause}"
                if is_source_unavailable(exc):
                    self._reconnect_later(message)
                    continue
                self._send(("start_failed", message))
                self._exit_code = EXIT_START_FAILED
                return
            # inference opens sources on its own thread: give the source a moment to open or refuse.
            deadline = time.monotonic() + SOURCE_OPEN_WAIT_S
            while (
                time.monotonic() < deadline
                and runner.status()["frames"] == 0
                and not runner.join(0.05)
            ):
                pass
            if runner.source_unavailable:
                runner.join(TERMINATE_JOIN_S)
                self._reconnect_later(runner.status()["error"] or "the source could not be opened")
                continue
            if self._phase != "started":
                self._phase, self._phase_error = "started", None
                self._delay = spec.reconnect_backoff_s
                self._send(("started", self.status()))
                if spec.start_paused:
                    try:
                        runner.pause()
                    except Exception:  # noqa: BLE001 - e.g. a very short file that already ended
                        logger.debug("pipeline %s: pause at start", spec.pipeline_id, exc_info=True)
            runner.join()
            if runner.source_unavailable and not self._stop.is_set():
                # The source went away for good mid-run: keep trying while the pipeline is wanted.
                self._reconnect_later(runner.status()["error"] or "the source went away")
                continue
            if self._exit_code is None:
                self._exit_code = EXIT_FAILED if runner.state.value == "failed" else EXIT_FINISHED
            return
        if self._exit_code is None:
            self._exit_code = EXIT_FINISHED

    def _reconnect_later(self, message: str) -> None:
        """A source that is down: report ``reconnecting``, wait (backoff) before the next try."""
        if self._stop.is_set():
            return

        # Issue 13.9 (helper A): one text for every cause (no port scanner); the log has the cause.
        shown = unreachable(self.spec.source)
        changed = self._phase != "reconnecting"
        self._phase, self._phase_error = "reconnecting", shown
        if changed:
            self._send(("reconnecting", shown))
        logger.warning(
            "pipeline %s: source unavailable, retrying in %.0f s: %s",
            self.spec.pipeline_id,
            self._delay,
            message,
        )
        self._stop.wait(self._delay)
        self._delay = min(self._delay * 2, self.spec.reconnect_backoff_max_s)

    # ------------------------------------------------------------------ reporting

    def status(self) -> dict[str, Any]:
        runner = self._runner
        if runner is None:
            starting = RunnerStatus(id=self.spec.pipeline_id, state=PipelineState.starting)
            return starting.model_dump(mode="json")
        status = runner.status()
        if self._phase == "reconnecting":
            status.update(state="reconnecting", error=self._phase_error)
        elif self._phase == "starting" and status["state"] in ("created", "failed"):
            status["state"] = "starting"
        return status

    def _on_result(self, result: Any) -> None:
        slot = self._slot
        if slot is None:
            return
        try:
            output = self.spec.preview_output
            try:
                image = result.image(output)
            except KeyError:
                image = result.image()
            slot.write(image)
        except Exception:  # noqa: BLE001 - the preview must never stop the pipeline
            logger.debug(
                "pipeline %s: preview frame not written", self.spec.pipeline_id, exc_info=True
            )

    def _announce_channels(self) -> None:
        export = self._channels
        channels = export.channels() if export is not None else {}
        if channels != self._announced:
            self._announced = channels
            self._send(("channels", channels))

    def _send_result(self) -> None:
        runner = self._runner
        result = runner.latest_result() if runner is not None else None
        if result is None or result.frame_id == self._result_sent_frame:
            return

        try:
            outputs = to_jsonable(result.outputs)
        except Exception as exc:  # noqa: BLE001
            outputs = {"error": f"outputs not serialisable: {type(exc).__name__}: {exc}"}
        self._result_sent_frame = result.frame_id
        self._send(
            (
                "result",
                {
                    "frame_id": result.frame_id,
                    "frame_timestamp": result.frame_timestamp.isoformat(),
                    "outputs": outputs,
                },
            )
        )

    def _send(self, message: Any) -> None:
        # The supervisor gone: the main loop notices on its next poll.
        with self._send_lock, contextlib.suppress(OSError, EOFError, BrokenPipeError):
            self.conn.send(message)


class _StateError(RuntimeError):
    pass


def channel_export(context: RuntimeContext, spec: WorkerSpec) -> WorkerPreview | None:
    """Where ``coral/webrtc_preview@v1`` blocks of this worker hand their channels' frames.

    The block calls ``server.preview.publish_to_server``, which publishes into the
    context's ``WorkerPreview`` when ``$CORAL_PREVIEW_DIR`` is set and a pipeline
    identity is declared (both true in a worker). The worker installs that exporter
    itself, so it can announce the channels' slots to the supervisor.
    """
    try:
        # inside the try: a preview exporter that fails to import only logs (except below)
        from coral_inference.server.preview import PREVIEW, PREVIEW_DIR_ENV, WorkerPreview

        base = Path(spec.log_path).parent if spec.log_path else Path(tempfile.gettempdir())
        directory = base / "channels" / spec.pipeline_id
        os.environ[PREVIEW_DIR_ENV] = str(directory)
        return context.shared(PREVIEW, lambda: WorkerPreview(directory, spec.pipeline_id))
    except Exception:  # noqa: BLE001 - without it only the blocks' channels stay in the worker
        logger.warning(
            "pipeline %s: block preview channels stay in the worker",
            spec.pipeline_id,
            exc_info=True,
        )
        return None


def _redirect_output(log_path: str | None) -> None:
    """fd 1 and 2 into the pipeline's log file (kept short), native crash traces included."""
    if log_path:
        try:
            os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
            mode = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            if os.path.exists(log_path) and os.path.getsize(log_path) > LOG_MAX_BYTES:
                mode |= os.O_TRUNC
            fd = os.open(log_path, mode, 0o640)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own stdout
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        except OSError:
            pass
    faulthandler.enable(file=sys.stderr, all_threads=True)
