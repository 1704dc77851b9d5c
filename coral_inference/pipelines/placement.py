"""CPU placement of the web control plane and of pipeline workers (``services.pipelines``).

A pipeline with no frame-rate cap takes every core it is given, so on a small box the
control plane (API, dashboard, WebRTC hub) and the pipelines trade CPU time under load.
``control_plane_cpus`` reserves cores for the web process; pipeline workers then run on
the other cores unless ``cpu_affinity`` (app-wide) or a pipeline's own ``cpu_affinity``
says otherwise. On an RK3588 the NPU runs the models; a natural split is the control plane
on the Cortex-A55 cores (0-3) and the pipelines' decoding and drawing on the A76 (4-7).

The cores are those the process had when it started (its affinity, e.g. a container's
cpuset), captured once before the web process pins itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

_startup_cpus: frozenset[int] | None = None


def startup_cpus() -> frozenset[int]:
    """The cores this process could run on before the control plane was pinned."""
    global _startup_cpus
    if _startup_cpus is None:
        _startup_cpus = frozenset(os.sched_getaffinity(0))
    return _startup_cpus


def cpu_list(cpus: Iterable[int]) -> str:
    """``0-3,6`` for people."""
    runs: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def check_cpus(cpus: Iterable[int] | None, what: str) -> None:
    """Refuse cores this machine (or container) does not give us, naming the ones it does."""
    if not cpus:
        return
    missing = sorted(set(cpus) - startup_cpus())
    if missing:
        raise ValueError(
            f"{what} names CPU core(s) {cpu_list(missing)} that this process cannot run on "
            f"(available: {cpu_list(startup_cpus())}); pick cores from that list"
        )


def worker_cpus(pipelines: Any) -> tuple[int, ...] | None:
    """Cores for workers whose pipeline names none (``services.pipelines``), or None for all.

    ``cpu_affinity`` if set, else the cores ``control_plane_cpus`` leaves, else no placement.
    """
    if pipelines.cpu_affinity:
        check_cpus(pipelines.cpu_affinity, "services.pipelines.cpu_affinity")
        return tuple(sorted(set(pipelines.cpu_affinity)))
    if pipelines.control_plane_cpus:
        check_cpus(pipelines.control_plane_cpus, "services.pipelines.control_plane_cpus")
        rest = startup_cpus() - set(pipelines.control_plane_cpus)
        if not rest:
            raise ValueError(
                "services.pipelines.control_plane_cpus "
                f"{cpu_list(pipelines.control_plane_cpus)} takes every core this process has "
                f"({cpu_list(startup_cpus())}), leaving none for pipelines; reserve fewer cores "
                "or set services.pipelines.cpu_affinity"
            )
        return tuple(sorted(rest))
    return None


def pin_control_plane(pipelines: Any) -> tuple[int, ...] | None:
    """Pin every thread of this (web) process to ``control_plane_cpus``; returns the cores.

    Call before the app starts its threads and its workers' forkserver; threads started
    later inherit the mask. Raises ``ValueError`` naming the cores when they do not exist here
    or would leave pipelines none.
    """
    startup_cpus()  # captured before the mask changes: workers get the rest
    # Every core named is checked before anything is pinned or started.
    check_cpus(pipelines.control_plane_cpus, "services.pipelines.control_plane_cpus")
    worker_cpus(pipelines)
    if not pipelines.control_plane_cpus:
        return None
    cpus = tuple(sorted(set(pipelines.control_plane_cpus)))
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return cpus
