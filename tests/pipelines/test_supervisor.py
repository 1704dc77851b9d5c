"""The supervisor's policy with stand-in workers (fork, no inference): fast, deterministic.

The stand-in speaks the worker protocol (``hello``, ``started``, ``status``,
``reply``) and misbehaves as its ``source`` says: ``segv`` dies of SIGSEGV,
``stall`` keeps its heartbeat but stops counting frames, ``mute`` stops talking,
``deaf`` ignores ``terminate`` and SIGTERM, ``end`` finishes its source, ``broken``
cannot start its workflow, ``channels`` publishes a block channel of its own; any of them dies of SIGSEGV when sent ``crash``. The real
worker and real crashes are in test_workers.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from coral_inference.media.frame_slot import FrameSlot
from coral_inference.pipelines.supervisor import RestartBackoff, Supervisor, SupervisorSettings
from coral_inference.pipelines.worker import EXIT_START_FAILED, WorkerSpec


def stand_in(conn, spec: WorkerSpec) -> None:
    behaviour = str(spec.source)
    if behaviour == "deaf":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn.send(("hello", os.getpid()))
    if behaviour == "broken":
        conn.send(("start_failed", "ValueError: unknown block"))
        os._exit(EXIT_START_FAILED)
    slot = FrameSlot.attach(spec.frame_slot) if spec.frame_slot else None
    conn.send(("started", {"id": spec.pipeline_id, "state": "running", "frames": 0, "error": None}))
    channel = FrameSlot.create(16 * 12 * 3) if behaviour == "channels" else None
    if channel is not None:  # what a preview block's WorkerPreview does in a real worker
        channel.write(np.full((12, 16, 3), 7, np.uint8))
        conn.send(("channels", {"blocks.gate": channel.name}))
    frames, paused, began = 0, False, time.monotonic()
    while True:
        if conn.poll(0.05):
            command, request_id = conn.recv()
            if command == "terminate" and behaviour != "deaf":
                os._exit(0)
            if command == "crash":
                os.kill(os.getpid(), signal.SIGSEGV)
            paused = command == "pause" if command in ("pause", "resume") else paused
            conn.send(("reply", request_id, None))
        elapsed = time.monotonic() - began
        if behaviour == "segv" and elapsed > 0.5:
            os.kill(os.getpid(), signal.SIGSEGV)
        if behaviour == "end" and elapsed > 0.5:
            os._exit(0)
        if behaviour == "mute" and elapsed > 0.5:
            time.sleep(3600)
        if not paused and not (behaviour == "stall" and elapsed > 0.5):
            frames += 1
            if slot is not None:
                slot.write(np.full((12, 16, 3), frames % 256, np.uint8))
        conn.send(
            (
                "status",
                {
                    "id": spec.pipeline_id,
                    "state": "paused" if paused else "running",
                    "frames": frames,
                    "error": None,
                },
            )
        )


@pytest.fixture
def make_supervisor(tmp_path):
    made: list[Supervisor] = []

    def _make(clock=time.monotonic, **settings) -> Supervisor:
        defaults = dict(
            restart="on-failure",
            restart_backoff_s=0.2,
            restart_backoff_max_s=1.0,
            heartbeat_timeout_s=1.5,
            stall_timeout_s=1.0,
            stop_timeout_s=1.0,
            preview_max_bytes=16 * 12 * 3,
            log_dir=tmp_path / "logs",
        )
        supervisor = Supervisor(
            SupervisorSettings(**{**defaults, **settings}),
            mp_context=multiprocessing.get_context("fork"),
            target=stand_in,
            clock=clock,
        )
        made.append(supervisor)
        return supervisor

    yield _make
    for supervisor in made:
        supervisor.close()


def spec(source: str, pid: str = "p1") -> WorkerSpec:
    return WorkerSpec(pipeline_id=pid, config={}, workflow={"steps": []}, source=source)


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout} s")


def test_a_worker_runs_pauses_resumes_and_stops_with_its_preview_in_shared_memory(make_supervisor):
    supervisor = make_supervisor()
    handle = supervisor.launch(spec("ok"))
    assert handle.wait_started(10) == ("started", "")
    wait_for(lambda: handle.describe()["frames"] > 3)
    frame, header = handle.latest_frame()
    assert frame.shape == (12, 16, 3) and header.frames > 0
    handle.command("pause", 5)
    wait_for(lambda: handle.describe()["state"] == "paused")
    handle.command("resume", 5)
    wait_for(lambda: handle.describe()["state"] == "running")
    supervisor.stop(handle)
    status = handle.describe()
    assert (
        status["state"] == "terminated" and status["last_exit"]["reason"] == "terminated on request"
    )
    assert (
        handle.slot is None and handle.latest_frame() is not None
    )  # memory given back, last frame kept


def test_a_crash_is_reported_with_its_signal_and_restarted_with_backoff(make_supervisor):
    supervisor = make_supervisor()
    handle = supervisor.launch(spec("segv"))
    handle.wait_started(10)
    wait_for(lambda: handle.restarts >= 1)
    status = handle.describe()
    assert status["last_exit"]["signal"] == "SIGSEGV" and status["last_exit"]["code"] is None
    assert "SIGSEGV" in status["last_exit"]["reason"]


def test_restarts_stop_at_the_hourly_maximum(make_supervisor):
    supervisor = make_supervisor(restart_max_per_hour=2)
    handle = supervisor.launch(spec("segv"))
    handle.wait_started(10)
    wait_for(lambda: handle.ended.is_set(), timeout=20)
    status = handle.describe()
    assert status["state"] == "failed" and status["restarts"] == 2
    assert "restart_max_per_hour" in status["error"]


def test_never_means_a_crash_stays_failed(make_supervisor):
    supervisor = make_supervisor(restart="never")
    handle = supervisor.launch(spec("segv"))
    handle.wait_started(10)
    wait_for(lambda: handle.ended.is_set())
    assert handle.describe()["state"] == "failed" and handle.restarts == 0


def test_a_source_that_ends_finishes_unless_always(make_supervisor):
    finished = make_supervisor().launch(spec("end"))
    wait_for(lambda: finished.ended.is_set())
    assert finished.describe()["state"] == "finished" and finished.restarts == 0
    again = make_supervisor(restart="always").launch(spec("end", "p2"))
    wait_for(lambda: again.restarts >= 1)


def test_a_stalled_worker_and_a_silent_worker_are_hung_and_restarted(make_supervisor):
    stalled = make_supervisor().launch(spec("stall", "stalled"))
    silent = make_supervisor(stall_timeout_s=0).launch(spec("mute", "silent"))  # only the heartbeat
    wait_for(lambda: stalled.restarts >= 1 and silent.restarts >= 1)
    assert "hung: no frame" in stalled.describe()["last_exit"]["reason"]
    assert "hung: no heartbeat" in silent.describe()["last_exit"]["reason"]


def test_terminate_kills_a_worker_that_ignores_it_within_the_timeout(make_supervisor):
    supervisor = make_supervisor()
    handle = supervisor.launch(spec("deaf"))
    handle.wait_started(10)
    began = time.monotonic()
    supervisor.stop(handle)
    assert time.monotonic() - began < 1.0 + 3.0 + 1.0
    assert (
        handle.describe()["state"] == "terminated"
        and handle.describe()["last_exit"]["signal"] == "SIGKILL"
    )


def test_a_workflow_that_cannot_start_is_not_restarted(make_supervisor):
    supervisor = make_supervisor()
    handle = supervisor.launch(spec("broken"))
    assert handle.wait_started(10) == ("failed", "ValueError: unknown block")
    wait_for(lambda: handle.ended.is_set())
    assert handle.restarts == 0 and handle.describe()["state"] == "failed"


def test_npu_cores_are_handed_out_least_loaded_first(make_supervisor):
    supervisor = make_supervisor(npu_core_masks=["0", "1", "2"])
    masks = [supervisor.launch(spec("ok", f"p{i}")).spec.npu_core_mask for i in range(4)]
    assert masks[:3] == ["0", "1", "2"] and masks[3] == "0"
    own = supervisor.launch(
        WorkerSpec(
            pipeline_id="mine", config={}, workflow={"steps": []}, source="ok", npu_core_mask="2"
        )
    )
    assert own.spec.npu_core_mask == "2"


def test_workers_get_the_app_wide_cores_unless_their_pipeline_names_some(make_supervisor):
    supervisor = make_supervisor(cpu_affinity=(1,))
    placed = supervisor.launch(spec("ok", "placed"))
    assert placed.spec.cpu_affinity == (1,) and placed.placement.cpu_affinity == [1]
    own = supervisor.launch(
        WorkerSpec(
            pipeline_id="mine", config={}, workflow={"steps": []}, source="ok", cpu_affinity=(0,)
        )
    )
    assert own.spec.cpu_affinity == (0,)
    assert make_supervisor().launch(spec("ok", "free")).spec.cpu_affinity is None


def test_close_stops_every_worker_and_leaves_no_process(make_supervisor):
    supervisor = make_supervisor()
    handles = [supervisor.launch(spec("ok", f"p{i}")) for i in range(3)]
    for handle in handles:
        handle.wait_started(10)
    pids = [h.pid for h in handles]
    supervisor.close()
    assert all(h.describe()["state"] == "terminated" for h in handles)
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


def test_backoff_doubles_in_a_row_resets_after_a_long_healthy_run_and_keeps_the_hourly_cap():
    backoff = RestartBackoff(initial_s=1.0, max_s=8.0, max_per_hour=6, reset_after_s=300.0)
    now, delays = 0.0, []
    for _ in range(5):  # crashes straight after each start
        delay = backoff.delay(now, healthy_for=2.0)
        assert delay is not None
        delays.append(delay)
        now += delay
        backoff.restarted(now)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubled, capped at max_s
    assert backoff.delay(now, healthy_for=299.0) == 8.0  # not long enough to count as healthy
    backoff.restarted(now)
    now += 600.0  # 10 minutes of good work, still inside the hour of six restarts
    assert backoff.delay(now, healthy_for=600.0) is None  # the hourly cap is not reset by it
    now += 3600.0  # an hour later the window is free again, and the run was healthy
    assert backoff.delay(now, healthy_for=3600.0) == 1.0
    backoff.restarted(now)
    assert backoff.delay(now, healthy_for=0.5) == 2.0  # and in a row again from there


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_crash_after_a_long_healthy_run_restarts_after_the_initial_backoff(make_supervisor):
    # The supervisor's own clock is a fake one: backoffs of minutes pass without sleeping.
    clock = FakeClock()
    supervisor = make_supervisor(
        clock=clock,
        restart_backoff_s=1.0,
        restart_backoff_max_s=60.0,
        restart_backoff_reset_s=300.0,
        restart_max_per_hour=100,
        heartbeat_timeout_s=1e9,  # the fake clock jumps; only crashes end workers here
        stall_timeout_s=0,
    )
    handle = supervisor.launch(spec("ok"))
    assert handle.wait_started(10) == ("started", "")

    def crash_and_wait() -> float:
        pid, restarts = handle.pid, handle.restarts
        handle.send(handle.conn, ("crash", 0))
        wait_for(lambda: handle.state.value == "restarting" and handle.next_restart_at)
        assert handle.last_exit.signal == "SIGSEGV" and handle.pid == pid
        delay = handle.next_restart_at - clock.now
        clock.now = handle.next_restart_at  # the backoff passes
        wait_for(lambda: handle.restarts == restarts + 1 and handle.state.value == "running")
        return delay

    # Crashes in a row: the wait doubles.
    assert [crash_and_wait() for _ in range(3)] == [1.0, 2.0, 4.0]
    # Now it runs healthy for ten minutes (its heartbeats keep coming), then crashes.
    clock.now += 600.0
    wait_for(lambda: handle.last_message_at >= clock.now)
    assert crash_and_wait() == 1.0
    # And a crash straight after that restart is "in a row" again.
    assert crash_and_wait() == 2.0
    assert handle.describe()["restarts"] == 5


def test_block_channels_are_announced_and_a_crashed_workers_slots_are_removed(make_supervisor):
    supervisor = make_supervisor(restart="never")
    handle = supervisor.launch(spec("channels"))
    handle.wait_started(10)
    announced = wait_for(lambda: dict(handle.channels))
    assert list(announced) == ["blocks.gate"]
    slot_name = announced["blocks.gate"]
    reader = FrameSlot.attach(slot_name)  # what the web process does, read-only
    read = reader.read()
    assert read is not None
    frame = read[0]
    assert frame.shape == (12, 16, 3) and int(frame[0, 0, 0]) == 7
    handle.send(handle.conn, ("crash", 0))
    wait_for(lambda: handle.ended.is_set())
    assert handle.channels == {}
    # The worker died without removing its slot; the supervisor did, so nothing leaks.
    assert not Path("/dev/shm", slot_name.lstrip("/")).exists()
    reader.close()
