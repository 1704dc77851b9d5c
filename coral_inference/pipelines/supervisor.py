"""The pipeline supervisor: one worker process per pipeline, watched, restarted, stopped.

Workers are forked by a ``multiprocessing`` forkserver that preloads inference's
pipeline stack and Coral's blocks once (``coral_inference.pipelines.zygote``), so a
pipeline starts in about a second instead of the ~12 s an import of inference costs,
and its workers share those pages. One supervisor thread watches every worker's pipe
and process sentinel:

* messages from the worker update its status, latest results and heartbeat;
* an exit becomes ``last_exit`` (code or signal, reason, the worker's last log lines)
  and the pipeline's state (``terminated`` when asked for, ``finished`` when its
  source ended, else ``failed``);
* the restart policy (``services.pipelines.restart``) brings a failed worker back
  with the same id after an exponential backoff, at most ``restart_max_per_hour``;
  a worker that ran healthy for ``restart_backoff_reset_s`` before it failed comes
  back after the initial backoff again (``RestartBackoff``);
* a worker that stops reporting (no heartbeat) or stops delivering frames while
  running (a hung block or decoder) is killed and handled by the same policy;
* resource figures (RSS, CPU %, threads, open files) are sampled per worker;
* preview channels that blocks publish inside a worker are announced with their
  shared-memory slots (``WorkerHandle.channels``); the web process attaches to them,
  and the slots of a worker that died without removing them are unlinked here.

Control calls (pause, resume, terminate) go over the pipe and wait for the reply
with a timeout; terminate escalates to SIGTERM and SIGKILL, so it always completes.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from multiprocessing import shared_memory
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import numpy as np

from coral_inference.media.frame_slot import FrameHeader, FrameSlot
from coral_inference.pipelines.placement import worker_cpus
from coral_inference.pipelines.status import (
    ExitInfo,
    PipelineState,
    Placement,
    ResourceUsage,
    RunnerStatus,
)
from coral_inference.pipelines.worker import EXIT_START_FAILED, WorkerSpec, worker_main

logger = logging.getLogger("coral_inference.pipelines.supervisor")

PRELOAD = ["coral_inference.pipelines.zygote"]
LOOP_PERIOD_S = 0.2
RESOURCE_PERIOD_S = 2.0
LOG_TAIL_LINES = 20
KILL_GRACE_S = 3.0
HOUR_S = 3600.0

_context_lock = threading.Lock()
_mp_context: BaseContext | None = None


class WorkerStartError(RuntimeError):
    """A worker did not start its pipeline; the message says why."""


class WorkerCommandError(RuntimeError):
    """A control call the worker refused or did not answer in time."""


def worker_context() -> BaseContext:
    """The forkserver context the workers come from, preloading inference once."""
    global _mp_context
    with _context_lock:
        if _mp_context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _mp_context = context
        return _mp_context


@dataclass
class SupervisorSettings:
    restart: str = "on-failure"
    restart_backoff_s: float = 1.0
    restart_backoff_max_s: float = 60.0
    restart_max_per_hour: int = 10
    restart_backoff_reset_s: float = 300.0
    heartbeat_timeout_s: float = 15.0
    stall_timeout_s: float = 60.0
    start_timeout_s: float = 180.0
    stop_timeout_s: float = 10.0
    reconnect_backoff_max_s: float = 30.0
    preview_max_bytes: int = 1920 * 1080 * 3
    npu_core_masks: list[str] = field(default_factory=lambda: ["0", "1", "2"])
    log_dir: Path = Path("var/coral/pipelines")
    status_interval_s: float = 0.5
    worker_session: bool = True
    cpu_affinity: tuple[int, ...] | None = None  # of workers whose pipeline names none

    @classmethod
    def from_config(cls, pipelines: Any, log_dir: Path) -> SupervisorSettings:
        """From ``services.pipelines`` of the runtime configuration."""
        return cls(
            restart=pipelines.restart,
            restart_backoff_s=pipelines.restart_backoff_s,
            restart_backoff_max_s=pipelines.restart_backoff_max_s,
            restart_max_per_hour=pipelines.restart_max_per_hour,
            restart_backoff_reset_s=pipelines.restart_backoff_reset_s,
            heartbeat_timeout_s=pipelines.heartbeat_timeout_s,
            stall_timeout_s=pipelines.stall_timeout_s,
            start_timeout_s=pipelines.start_timeout_s,
            stop_timeout_s=pipelines.stop_timeout_s,
            reconnect_backoff_max_s=pipelines.reconnect_backoff_max_s,
            preview_max_bytes=pipelines.preview_max_bytes,
            npu_core_masks=list(pipelines.npu_core_masks),
            log_dir=Path(log_dir),
            worker_session=pipelines.worker_session,
            cpu_affinity=worker_cpus(pipelines),
        )


class RestartBackoff:
    """When a failed worker comes back: exponential backoff, reset by a long healthy run, hourly cap.

    The wait doubles with every restart in a row (``initial_s``, ``2·initial_s`` …
    ``max_s``). A worker that ran healthy for at least ``reset_after_s`` before it
    failed starts the series again at ``initial_s``: one crash after a day of good
    work is not "in a row" with the crashes of the morning. Independently, at most
    ``max_per_hour`` restarts happen in any hour (a sliding window); past that the
    pipeline stays failed.
    """

    def __init__(self, initial_s: float, max_s: float, max_per_hour: int, reset_after_s: float):
        self.initial_s = initial_s
        self.max_s = max_s
        self.max_per_hour = max_per_hour
        self.reset_after_s = reset_after_s
        self.step = 0  # restarts in a row since the last healthy run
        self.times: deque[float] = deque()  # when restarts happened, the last hour's

    def delay(self, now: float, healthy_for: float) -> float | None:
        """The wait before the next restart, or None when the hourly maximum is reached."""
        while self.times and now - self.times[0] > HOUR_S:
            self.times.popleft()
        if len(self.times) >= self.max_per_hour:
            return None
        if healthy_for >= self.reset_after_s:
            self.step = 0
        delay = min(self.initial_s * 2**self.step, self.max_s)
        self.step += 1
        return delay

    def restarted(self, now: float) -> None:
        self.times.append(now)


class WorkerHandle:
    """One pipeline's worker across its restarts; fields guarded by the supervisor's lock."""

    def __init__(self, supervisor: Supervisor, spec: WorkerSpec):
        self.supervisor = supervisor
        self.spec = spec
        self.pipeline_id = spec.pipeline_id
        self.state = PipelineState.starting
        self.desired = "paused" if spec.start_paused else "running"
        self.process: Any = None
        self.conn: Connection | None = None
        self.pid: int | None = None
        self.slot: FrameSlot | None = None
        self.last_frame: tuple[np.ndarray, FrameHeader] | None = (
            None  # kept when the slot is released
        )
        self.status: dict[str, Any] = RunnerStatus(
            id=spec.pipeline_id, state=PipelineState.starting
        ).model_dump(mode="json")
        self.result: dict[str, Any] | None = None
        self.channels: dict[str, str] = {}  # block preview channel -> shared-memory slot name
        self.restarts = 0
        settings = supervisor.settings
        self.backoff = RestartBackoff(
            settings.restart_backoff_s,
            settings.restart_backoff_max_s,
            settings.restart_max_per_hour,
            settings.restart_backoff_reset_s,
        )
        # The current worker's healthy run: from "started" to its last sign of work.
        self.healthy_since: float | None = None
        self.healthy_until: float | None = None
        self.last_exit: ExitInfo | None = None
        self.error: str | None = None
        self.next_restart_at: float | None = None
        self.spawned_at = 0.0
        self.last_message_at = 0.0
        self.progress_frames = -1
        self.progress_at = 0.0
        self.ever_started = False  # reached "started" or "reconnecting" at least once
        self.stop_requested = False
        self.kill_reason: str | None = None
        self.kill_deadline: float | None = None
        self.resources: ResourceUsage | None = None
        self._psutil: Any = None
        self.start_event = threading.Event()
        self.start_outcome: tuple[str, str] | None = None
        self.ended = threading.Event()
        self._replies: dict[int, tuple[threading.Event, list[str | None]]] = {}
        self._send_lock = threading.Lock()

    # ------------------------------------------------------------------ views

    @property
    def placement(self) -> Placement:
        affinity = list(self.spec.cpu_affinity) if self.spec.cpu_affinity else None
        return Placement(npu_core_mask=self.spec.npu_core_mask, cpu_affinity=affinity)

    def describe(self) -> dict[str, Any]:
        """The runner-shaped status plus supervision: restarts, last exit, resources, placement."""
        with self.supervisor.lock:
            status = dict(self.status)
            status["state"] = self.state.value
            if self.state in (PipelineState.failed, PipelineState.restarting) and self.error:
                status["error"] = self.error
            status.update(
                isolation="process",
                restarts=self.restarts,
                last_exit=self.last_exit.model_dump(mode="json") if self.last_exit else None,
                resources=self.resources.model_dump(mode="json")
                if self.resources and self.alive()
                else None,
                placement=self.placement.model_dump(mode="json"),
            )
            return status

    def alive(self) -> bool:
        return self.process is not None and self.process.exitcode is None

    def latest_frame(self) -> tuple[np.ndarray, FrameHeader] | None:
        slot = self.slot
        if slot is not None:
            try:
                read = slot.read()
            except (ValueError, TypeError):  # released meanwhile
                read = None
            if read is not None:
                return read
        return self.last_frame

    def frame_header(self) -> FrameHeader | None:
        slot = self.slot
        if slot is not None:
            try:
                return slot.header()
            except (ValueError, TypeError):
                return None
        return self.last_frame[1] if self.last_frame else None

    # ------------------------------------------------------------------ control (any thread)

    def wait_started(self, timeout: float) -> tuple[str, str]:
        """``("started"|"reconnecting"|"failed", message)`` once known; kills it on timeout."""
        if not self.start_event.wait(timeout):
            self.supervisor.stop(
                self,
                reason=f"did not start within {timeout:g} s (services.pipelines.start_timeout_s)",
            )
            return "failed", f"the pipeline did not start within {timeout:g} s"
        assert self.start_outcome is not None
        return self.start_outcome

    def command(self, name: str, timeout: float) -> None:
        """Send ``pause``/``resume`` and wait for the worker's answer."""
        with self.supervisor.lock:
            if not self.alive() or self.conn is None:
                raise WorkerCommandError(
                    f"pipeline {self.pipeline_id} is {self.state.value}, not running"
                )
            request_id = next(self.supervisor.request_ids)
            done = threading.Event()
            answer: list[str | None] = []
            self._replies[request_id] = (done, answer)
            conn = self.conn
        try:
            self.send(conn, (name, request_id))
            if not done.wait(timeout):
                raise WorkerCommandError(
                    f"pipeline {self.pipeline_id} did not answer {name} within {timeout:g} s"
                )
        finally:
            with self.supervisor.lock:
                self._replies.pop(request_id, None)
        if answer and answer[0]:
            raise WorkerCommandError(answer[0])
        with self.supervisor.lock:
            self.desired = "paused" if name == "pause" else "running"

    def send(self, conn: Connection, message: Any) -> None:
        with self._send_lock, contextlib.suppress(OSError, EOFError, BrokenPipeError, ValueError):
            conn.send(message)

    def reply(self, request_id: int, error: str | None) -> None:
        entry = self._replies.get(request_id)
        if entry is not None:
            entry[1].append(error)
            entry[0].set()


class Supervisor:
    """Starts, watches and stops pipeline workers; one thread watches them all."""

    def __init__(
        self,
        settings: SupervisorSettings,
        *,
        mp_context: BaseContext | None = None,
        target: Callable[..., None] = worker_main,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.clock = clock  # monotonic seconds; tests drive the policy with their own
        self.lock = threading.RLock()
        self.request_ids = itertools.count(1)
        self._mp = mp_context
        self._target = target
        self._handles: dict[str, WorkerHandle] = {}
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._last_resources = 0.0

    @property
    def mp(self) -> Any:
        if self._mp is None:
            self._mp = worker_context()
        return self._mp

    # ------------------------------------------------------------------ public

    def warm_up(self) -> None:
        """Start the forkserver (it imports inference once) before the first pipeline needs it."""
        process = self.mp.Process(target=_noop, name="coral-worker-warmup")
        process.start()
        process.join(600)

    def launch(self, spec: WorkerSpec) -> WorkerHandle:
        """A worker for ``spec``; returns at once (``WorkerHandle.wait_started`` waits for it)."""
        with self.lock:
            if self._closed.is_set():
                raise WorkerStartError("the pipeline supervisor is closed")
            if spec.npu_core_mask is None:
                spec = _with(spec, npu_core_mask=self._next_npu_mask())
            if spec.cpu_affinity is None and self.settings.cpu_affinity:
                spec = _with(spec, cpu_affinity=self.settings.cpu_affinity)
            handle = WorkerHandle(self, spec)
            old = self._handles.get(spec.pipeline_id)
            if old is not None and (old.alive() or old.next_restart_at is not None):
                raise WorkerStartError(f"pipeline {spec.pipeline_id} already has a worker")
            self._handles[spec.pipeline_id] = handle
            self._ensure_thread()
            self._spawn(handle)
        return handle

    def stop(
        self, handle: WorkerHandle, *, reason: str | None = None, timeout: float | None = None
    ) -> None:
        """Stop a worker and keep it stopped; always returns within the stop timeout plus a kill."""
        timeout = self.settings.stop_timeout_s if timeout is None else timeout
        with self.lock:
            handle.desired = "terminated"
            handle.stop_requested = reason is None
            if reason is not None:
                handle.kill_reason = reason
            handle.next_restart_at = None
            process, conn = handle.process, handle.conn
            if process is None or process.exitcode is not None:
                if handle.state in (PipelineState.restarting, PipelineState.starting):
                    handle.state = (
                        PipelineState.terminated if reason is None else PipelineState.failed
                    )
                    self._finish(handle)
                return
        if conn is not None:
            handle.send(conn, ("terminate", 0))
        process.join(timeout)
        if process.exitcode is None:
            logger.warning(
                "pipeline %s: worker did not stop within %g s; SIGTERM", handle.pipeline_id, timeout
            )
            process.terminate()
            process.join(KILL_GRACE_S)
        if process.exitcode is None:
            logger.warning("pipeline %s: worker ignored SIGTERM; SIGKILL", handle.pipeline_id)
            process.kill()
            process.join(KILL_GRACE_S)
        self._reap(handle)

    def forget(self, handle: WorkerHandle) -> None:
        """Drop a stopped worker's handle (its pipeline was deleted)."""
        with self.lock:
            if self._handles.get(handle.pipeline_id) is handle:
                del self._handles[handle.pipeline_id]
            handle.last_frame = None
            self._release(handle)

    def handles(self) -> list[WorkerHandle]:
        with self.lock:
            return list(self._handles.values())

    def close(self) -> None:
        """Stop every worker (in parallel) and the supervisor thread."""
        handles = self.handles()
        threads = [
            threading.Thread(target=self.stop, args=(h,), name=f"coral-stop-{h.pipeline_id}")
            for h in handles
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._closed.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self.lock:
            for handle in self._handles.values():
                self._release(handle)

    # ------------------------------------------------------------------ spawning (lock held)

    def _next_npu_mask(self) -> str | None:
        masks = self.settings.npu_core_masks
        if not masks:
            return None
        load = {m: 0 for m in masks}
        for handle in self._handles.values():
            if handle.state.active and handle.spec.npu_core_mask in load:
                load[handle.spec.npu_core_mask] += 1
        return min(masks, key=lambda m: (load[m], masks.index(m)))

    def _spawn(self, handle: WorkerHandle) -> None:
        if handle.slot is None:
            handle.slot = FrameSlot.create(self.settings.preview_max_bytes)
        log_path = self.settings.log_dir / f"{handle.pipeline_id}.log"
        spec = _with(
            handle.spec,
            frame_slot=handle.slot.name,
            log_path=str(log_path),
            start_paused=handle.desired == "paused",
            reconnect_backoff_max_s=self.settings.reconnect_backoff_max_s,
            status_interval_s=self.settings.status_interval_s,
            own_session=self.settings.worker_session,
        )
        parent, child = self.mp.Pipe(duplex=True)
        process = self.mp.Process(
            target=self._target, args=(child, spec), name=f"coral-pipeline-{handle.pipeline_id}"
        )
        try:
            process.start()
        finally:
            child.close()
        now = self.clock()
        handle.process, handle.conn, handle.pid = process, parent, process.pid
        handle.state = PipelineState.starting
        handle.status = {**handle.status, "state": "starting"}
        handle.spawned_at = handle.last_message_at = handle.progress_at = now
        handle.progress_frames = -1
        handle.healthy_since = handle.healthy_until = None
        handle.kill_reason = handle.kill_deadline = None
        handle.stop_requested = False
        handle.next_restart_at = None
        handle._psutil = None
        handle.ended.clear()
        logger.info("pipeline %s: worker pid %s started", handle.pipeline_id, process.pid)

    # ------------------------------------------------------------------ the watching thread

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="coral-pipeline-supervisor", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            with self.lock:
                live = [
                    (h, h.conn, h.process.sentinel)
                    for h in self._handles.values()
                    if h.process is not None and h.conn is not None
                ]
            waitables: list[Any] = []
            for _, conn, sentinel in live:
                waitables += [conn, sentinel]
            try:
                ready = set(wait(waitables, LOOP_PERIOD_S)) if waitables else set()
            except (OSError, ValueError):  # a handle closed under us; next round
                ready = set()
            if not waitables:
                self._closed.wait(LOOP_PERIOD_S)
            for handle, conn, sentinel in live:
                try:
                    if conn in ready or sentinel in ready:
                        self._drain(handle)
                    if sentinel in ready:
                        self._reap(handle)
                except Exception:  # noqa: BLE001 - one worker's trouble must not stop the watching
                    logger.exception("pipeline %s: supervisor", handle.pipeline_id)
            try:
                self._check(self.clock())
            except Exception:  # noqa: BLE001 - the supervisor must keep watching
                logger.exception("pipeline supervisor check failed")

    def _drain(self, handle: WorkerHandle) -> None:
        conn = handle.conn
        if conn is None:
            return
        try:
            while conn.poll():
                self._on_message(handle, conn.recv())
        except (EOFError, OSError, ValueError):
            pass

    def _on_message(self, handle: WorkerHandle, message: Any) -> None:
        kind = message[0]
        now = self.clock()
        with self.lock:
            handle.last_message_at = now
            if kind == "status":
                status = message[1]
                handle.status = status
                if handle.ever_started and handle.alive():
                    with contextlib.suppress(ValueError):
                        handle.state = PipelineState(status.get("state", "running"))
                frames = int(status.get("frames") or 0)
                if frames != handle.progress_frames:
                    handle.progress_frames, handle.progress_at = frames, now
            elif kind == "result":
                handle.result = message[1]
            elif kind == "channels":
                handle.channels = {str(c): str(name) for c, name in dict(message[1]).items()}
            elif kind == "reply":
                handle.reply(message[1], message[2])
            elif kind in ("started", "reconnecting"):
                handle.ever_started = True
                handle.error = None
                handle.state = (
                    PipelineState.running if kind == "started" else PipelineState.reconnecting
                )
                if kind == "started":
                    handle.status = message[1]
                    handle.progress_at = now
                    handle.healthy_since = now
                    if handle.desired == "paused":
                        handle.state = PipelineState.paused
                else:
                    handle.status = {**handle.status, "state": "reconnecting", "error": message[1]}
                    handle.healthy_since = None  # a source that is down is no healthy run
                self._outcome(handle, kind, "" if kind == "started" else message[1])
            elif kind == "start_failed":
                handle.error = message[1]
                self._outcome(handle, "failed", message[1])
            elif kind == "hello":
                handle.pid = message[1]

    def _outcome(self, handle: WorkerHandle, kind: str, message: str) -> None:
        if handle.start_outcome is None or not handle.start_event.is_set():
            handle.start_outcome = (kind, message)
            handle.start_event.set()

    def _reap(self, handle: WorkerHandle) -> None:
        """Turn an ended worker into an exit record, a state and perhaps a scheduled restart."""
        with self.lock:
            process = handle.process
            if process is None or process.exitcode is None:
                return
            code = process.exitcode
            handle.process = None
            if handle.conn is not None:
                handle.conn.close()
                handle.conn = None
            handle.resources = None
            # A worker removes its channels' slots when it stops; one that crashed cannot.
            _unlink_slots(handle.channels.values())
            handle.channels = {}
            exit_info = _exit_info(
                code, handle, self.settings.log_dir / f"{handle.pipeline_id}.log"
            )
            handle.last_exit = exit_info
            if handle.stop_requested:
                handle.state = PipelineState.terminated
            elif handle.kill_reason is None and code == 0:
                handle.state = PipelineState.finished
            else:
                handle.state = PipelineState.failed
                handle.error = (
                    handle.error if code == EXIT_START_FAILED and handle.error else exit_info.reason
                )
            self._outcome(handle, "failed", handle.error or exit_info.reason)
            logger.log(
                logging.INFO if handle.state is not PipelineState.failed else logging.ERROR,
                "pipeline %s: worker ended: %s",
                handle.pipeline_id,
                exit_info.reason,
            )
            if self._should_restart(handle, code):
                self._schedule_restart(handle)
            else:
                self._finish(handle)

    def _should_restart(self, handle: WorkerHandle, code: int) -> bool:
        policy = self.settings.restart
        if handle.stop_requested or handle.desired == "terminated" or self._closed.is_set():
            return False
        if not handle.ever_started or code == EXIT_START_FAILED:
            return False  # a workflow that cannot start is not retried in a loop
        if handle.state is PipelineState.failed:
            return policy in ("on-failure", "always")
        return policy == "always" and handle.state is PipelineState.finished

    def _schedule_restart(self, handle: WorkerHandle) -> None:
        now = self.clock()
        delay = handle.backoff.delay(now, _healthy_for(handle))
        if delay is None:
            handle.error = (
                f"{handle.error or 'worker ended'}; not restarted: "
                f"{self.settings.restart_max_per_hour} restarts in the last hour "
                "(services.pipelines.restart_max_per_hour)"
            )
            handle.state = PipelineState.failed
            self._finish(handle)
            return
        handle.next_restart_at = now + delay
        handle.state = PipelineState.restarting
        logger.warning(
            "pipeline %s: restarting in %.1f s (%s)",
            handle.pipeline_id,
            delay,
            handle.last_exit.reason if handle.last_exit else "",
        )

    def _finish(self, handle: WorkerHandle) -> None:
        """The worker stays down: keep its last frame, give back the shared memory."""
        handle.next_restart_at = None
        latest = handle.latest_frame()
        if latest is not None:
            handle.last_frame = latest
        self._release(handle)
        handle.ended.set()

    def _release(self, handle: WorkerHandle) -> None:
        if handle.slot is not None:
            handle.slot.close()
            handle.slot = None

    def _check(self, now: float) -> None:
        settings = self.settings
        sample = now - self._last_resources >= RESOURCE_PERIOD_S
        if sample:
            self._last_resources = now
        with self.lock:
            handles = list(self._handles.values())
        for handle in handles:
            with self.lock:
                if handle.next_restart_at is not None and now >= handle.next_restart_at:
                    handle.restarts += 1
                    handle.backoff.restarted(now)
                    try:
                        self._spawn(handle)
                    except Exception as exc:  # noqa: BLE001
                        handle.error = f"restart failed: {type(exc).__name__}: {exc}"
                        handle.state = PipelineState.failed
                        self._finish(handle)
                    continue
                process = handle.process
                if process is None or process.exitcode is not None:
                    continue
                if handle.kill_deadline is not None:
                    if now >= handle.kill_deadline:
                        process.kill()
                    continue
                reason = None
                if now - handle.last_message_at > settings.heartbeat_timeout_s:
                    reason = f"hung: no heartbeat for {now - handle.last_message_at:.0f} s"
                    handle.healthy_until = handle.last_message_at
                elif (
                    handle.state is PipelineState.starting
                    and not handle.ever_started
                    and now - handle.spawned_at > settings.start_timeout_s
                ):
                    reason = f"hung: did not start within {settings.start_timeout_s:g} s"
                elif (
                    settings.stall_timeout_s
                    and handle.state is PipelineState.running
                    and handle.desired == "running"
                    and now - handle.progress_at > settings.stall_timeout_s
                ):
                    reason = f"hung: no frame for {now - handle.progress_at:.0f} s"
                    handle.healthy_until = handle.progress_at
                if reason is not None:
                    logger.error("pipeline %s: %s; stopping its worker", handle.pipeline_id, reason)
                    handle.kill_reason = reason
                    handle.kill_deadline = now + min(settings.stop_timeout_s, 5.0)
                    if handle.conn is not None:
                        handle.send(handle.conn, ("terminate", 0))
                    process.terminate()
            if sample:
                self._sample(handle)

    def _sample(self, handle: WorkerHandle) -> None:
        pid = handle.pid
        if pid is None or not handle.alive():
            return
        try:
            # psutil (C extension) only once a live worker is sampled
            import psutil

            proc = handle._psutil
            if proc is None or proc.pid != pid:
                proc = handle._psutil = psutil.Process(pid)
                proc.cpu_percent(None)
            with proc.oneshot():
                usage = ResourceUsage(
                    pid=pid,
                    rss_bytes=proc.memory_info().rss,
                    cpu_percent=round(proc.cpu_percent(None), 1),
                    threads=proc.num_threads(),
                    open_files=proc.num_fds(),
                )
        except Exception:  # noqa: BLE001 - the process ended meanwhile
            return
        with self.lock:
            handle.resources = usage


def _healthy_for(handle: WorkerHandle) -> float:
    """How long the worker that just ended ran healthy: from "started" to its last sign of work.

    A crash ends a healthy run at the last message; a hang at the last frame (stall)
    or the last message (heartbeat), not when it was noticed.
    """
    if handle.healthy_since is None:
        return 0.0
    until = handle.healthy_until if handle.healthy_until is not None else handle.last_message_at
    return max(0.0, until - handle.healthy_since)


def _unlink_slots(names: Any) -> None:

    for name in list(names):
        try:
            shm = shared_memory.SharedMemory(name=name)
        except (FileNotFoundError, OSError, ValueError):
            continue  # removed by the worker itself
        shm.close()
        with contextlib.suppress(FileNotFoundError):
            shm.unlink()


def _with(spec: WorkerSpec, **changes: Any) -> WorkerSpec:

    return replace(spec, **changes)


def _exit_info(code: int, handle: WorkerHandle, log_path: Path) -> ExitInfo:
    signal_name = None
    if code < 0:
        try:
            signal_name = signal.Signals(-code).name
        except ValueError:
            signal_name = f"signal {-code}"
    if handle.stop_requested:
        reason = "terminated on request"
    elif handle.kill_reason is not None:
        how = f"killed by {signal_name}" if signal_name else f"exit code {code}"
        reason = f"{handle.kill_reason} (worker stopped, {how})"
    elif signal_name is not None:
        reason = f"worker killed by {signal_name}"
    elif code == 0:
        reason = "source ended"
    elif code == EXIT_START_FAILED:
        reason = "the workflow did not start"
    else:
        reason = f"worker exited with code {code}"
    return ExitInfo(
        code=None if signal_name else code,
        signal=signal_name,
        reason=reason,
        at=datetime.now(timezone.utc).isoformat(),
        log_tail=_tail(log_path, LOG_TAIL_LINES),
    )


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    all_lines = text.splitlines()
    tail = all_lines[-lines:]
    # A native crash dumps every thread's stack: keep its first line, which names the fault.
    fatal = [line for line in all_lines[:-lines] if line.startswith("Fatal Python error")]
    return [line[:500] for line in fatal[-1:] + tail]


def _noop() -> None:
    pass
