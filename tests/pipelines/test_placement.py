"""CPU placement: the control plane's reserved cores, the cores workers get, ORT's pool size."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from coral_inference.config import ConfigError, load_config
from coral_inference.pipelines import placement
from coral_inference.pipelines.worker import WorkerSpec, apply_cpu_affinity, worker_config

CPUS = sorted(os.sched_getaffinity(0))


def two_cores() -> None:
    assert len(CPUS) >= 2, f"placement tests need 2 cores to split, this process has {CPUS}"


def pipelines(**fields):
    return SimpleNamespace(**{"cpu_affinity": None, "control_plane_cpus": None, **fields})


def test_cpu_list_reads_like_taskset():
    assert placement.cpu_list([6, 0, 1, 2, 3]) == "0-3,6"
    assert placement.cpu_list([5]) == "5" and placement.cpu_list([1, 3, 4]) == "1,3-4"


def test_workers_get_what_the_control_plane_leaves_or_the_app_wide_cores():
    two_cores()
    assert placement.worker_cpus(pipelines()) is None
    rest = placement.worker_cpus(pipelines(control_plane_cpus=[CPUS[0]]))
    assert rest == tuple(CPUS[1:])
    # The app-wide cores win over the complement; duplicates and order do not matter.
    chosen = placement.worker_cpus(
        pipelines(control_plane_cpus=[CPUS[0]], cpu_affinity=[CPUS[0], CPUS[0]])
    )
    assert chosen == (CPUS[0],)


def test_cores_the_machine_lacks_and_a_control_plane_that_takes_all_are_refused():
    missing = max(CPUS) + 7
    with pytest.raises(ValueError, match=rf"core\(s\) {missing} .*available: ") as refused:
        placement.worker_cpus(pipelines(cpu_affinity=[missing]))
    assert "services.pipelines.cpu_affinity" in str(refused.value)
    with pytest.raises(ValueError, match="control_plane_cpus .*available"):
        placement.pin_control_plane(pipelines(control_plane_cpus=[missing]))
    with pytest.raises(ValueError, match="control_plane_cpus .*available"):  # beside workers' own
        placement.pin_control_plane(pipelines(control_plane_cpus=[missing], cpu_affinity=[CPUS[0]]))
    with pytest.raises(ValueError, match="leaving none for pipelines"):
        placement.worker_cpus(pipelines(control_plane_cpus=CPUS))


def test_the_configuration_refuses_a_control_plane_split_with_thread_isolation():
    with pytest.raises(ConfigError, match="control_plane_cpus needs isolation: process"):
        load_config(
            None,
            overrides=[
                "services.pipelines.control_plane_cpus=[0]",
                "services.pipelines.isolation=thread",
            ],
            use_env=False,
        )
    loaded = load_config(
        None, overrides=["services.pipelines.control_plane_cpus=[0]"], use_env=False
    )
    assert loaded.descriptor.services.pipelines.control_plane_cpus == [0]


PIN_SCRIPT = textwrap.dedent(
    """
    import os, threading, time, json, sys
    from types import SimpleNamespace
    from coral_inference.pipelines import placement
    early = threading.Thread(target=time.sleep, args=(5,), daemon=True)
    early.start()  # a thread that exists before the pin must move too
    cpus = json.loads(sys.argv[1])
    pinned = placement.pin_control_plane(
        SimpleNamespace(control_plane_cpus=cpus, cpu_affinity=None)
    )
    late = threading.Thread(target=time.sleep, args=(5,), daemon=True)
    late.start()
    masks = {t: sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}
    workers = placement.worker_cpus(SimpleNamespace(control_plane_cpus=cpus, cpu_affinity=None))
    print(json.dumps({"pinned": pinned, "masks": masks, "workers": workers}))
    """
)


def test_pinning_moves_every_thread_of_the_web_process_and_workers_keep_the_rest():
    two_cores()
    out = subprocess.run(
        [sys.executable, "-c", PIN_SCRIPT, f"[{CPUS[0]}]"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    found = json.loads(out.stdout)
    assert found["pinned"] == [CPUS[0]]
    assert len(found["masks"]) >= 3  # main, early, late
    assert all(mask == [CPUS[0]] for mask in found["masks"].values()), found["masks"]
    # The worker cores come from the cores the process had before it pinned itself.
    assert found["workers"] == CPUS[1:]


def _affinity_in_child(spec: WorkerSpec, conn) -> None:
    apply_cpu_affinity(spec)
    conn.send(sorted(os.sched_getaffinity(0)))


def test_a_worker_runs_on_its_cores_and_sizes_onnx_runtime_to_them():
    two_cores()
    spec = WorkerSpec(pipeline_id="p", config={}, workflow={}, source=0, cpu_affinity=(CPUS[-1],))
    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=_affinity_in_child, args=(spec, child)
    )
    process.start()
    assert parent.poll(30) and parent.recv() == [CPUS[-1]]
    process.join(10)
    # ONNX Runtime sizes its pool from the machine: a worker on one core gets one thread...
    config = {"backends": {"onnxruntime": {"intra_op_num_threads": 0, "providers": ["cpu"]}}}
    spec = WorkerSpec(pipeline_id="p", config=config, workflow={}, source=0, cpu_affinity=(1,))
    assert worker_config(spec)["backends"]["onnxruntime"]["intra_op_num_threads"] == 1
    assert config["backends"]["onnxruntime"]["intra_op_num_threads"] == 0  # not mutated
    # ...unless the user chose a number; and no placement leaves ONNX Runtime's default.
    config["backends"]["onnxruntime"]["intra_op_num_threads"] = 3
    assert worker_config(spec)["backends"]["onnxruntime"]["intra_op_num_threads"] == 3
    unplaced = WorkerSpec(pipeline_id="p", config={"backends": {}}, workflow={}, source=0)
    assert "intra_op_num_threads" not in worker_config(unplaced)["backends"]["onnxruntime"]
    # Workers' pools do not spin between runs unless the user asked for it.
    assert worker_config(unplaced)["backends"]["onnxruntime"]["allow_spinning"] is False
    config["backends"]["onnxruntime"]["allow_spinning"] = True
    assert worker_config(spec)["backends"]["onnxruntime"]["allow_spinning"] is True


def test_web_serve_refuses_cores_it_does_not_have(tmp_path: Path):
    missing = max(CPUS) + 7
    cli = Path(sys.executable).parent / "coral-runtime"
    out = subprocess.run(
        [
            str(cli),
            "web",
            "serve",
            "--no-env",
            "--set",
            f"services.pipelines.control_plane_cpus=[{missing}]",
            "--set",
            f"storage.root={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "DISABLE_VERSION_CHECK": "True"},
    )
    assert out.returncode == 2, out.stderr
    assert f"core(s) {missing}" in out.stderr and "available:" in out.stderr
