"""Which pipeline this process serves, and shutting Coral down when the process ends.

One mechanism for both ways a pipeline runs in its own process:

* Coral's control plane starts a worker per pipeline (``coral_inference.pipelines``);
* Roboflow's stream manager forks a worker per pipeline inside the inference server.

Either way the code that starts the pipeline calls :func:`set_pipeline_identity`
once, before the first frame, and :func:`install_exit_shutdown` once. Blocks key
their recordings folders, metric labels and preview channels by
:func:`pipeline_key` — never by the source index, which is ``0`` for every
single-source pipeline.

Nothing here runs at import.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PipelineIdentity:
    """The pipeline a process serves: a stable id and an optional human name."""

    pipeline_id: str
    name: str | None = None

    @property
    def key(self) -> str:
        """A filesystem- and label-safe key: the name when given, else the id."""
        return safe_key(self.name or self.pipeline_id)


_lock = threading.Lock()
_identity: PipelineIdentity | None = None
_exit_hook_installed = False


def safe_key(text: str) -> str:
    """``text`` reduced to ``[A-Za-z0-9._-]`` (no separators, no ``..``), at most 96 characters."""
    cleaned = _SAFE.sub("_", text).strip("._") or "pipeline"
    return cleaned[:96]


def set_pipeline_identity(pipeline_id: str, name: str | None = None) -> PipelineIdentity:
    """Declare which pipeline this process runs (called once by the worker's starter)."""
    global _identity
    if not pipeline_id:
        raise ValueError("a pipeline identity needs a non-empty pipeline_id")
    with _lock:
        _identity = PipelineIdentity(pipeline_id=pipeline_id, name=name)
        return _identity


def clear_pipeline_identity() -> None:
    global _identity
    with _lock:
        _identity = None


def current_pipeline_identity() -> PipelineIdentity | None:
    return _identity


def pipeline_key(source: object | None = None) -> str:
    """The key blocks use for per-pipeline state, files, series and channels.

    With a declared identity: its key, plus the source when the pipeline has several
    sources (``source`` not ``None``/``0``), e.g. ``cam-a`` or ``cam-a.1``. Without one
    (a notebook, ``coral-runtime run``, ``ExecutionEngine``): the source as before.
    """
    identity = _identity
    source_text = None if source is None else str(source)
    if identity is None:
        return safe_key(source_text) if source_text is not None else "default"
    if source_text in (None, "", "0"):
        return identity.key
    return f"{identity.key}.{safe_key(source_text)}"


def install_exit_shutdown(extra: Callable[[], None] | None = None) -> None:
    """Shut Coral down (recordings finalised, metrics flushed) when this process ends.

    Covers a normal exit (``atexit``; in a ``multiprocessing`` child, whose exit skips
    ``atexit``, a ``multiprocessing.util.Finalize`` hook) and SIGTERM/SIGINT. When the
    process already installed its own Python handler for a signal (the stream
    manager's worker stops its pipeline on SIGTERM and then returns from ``run``),
    that handler alone runs and the shutdown follows at exit, after the pipeline
    drained; otherwise the shutdown runs first and the default action follows.
    The shutdown runs once. Idempotent; call from the main thread.
    """
    global _exit_hook_installed
    with _lock:
        if _exit_hook_installed:
            return
        _exit_hook_installed = True

    done = threading.Event()

    def _shutdown() -> None:
        from coral_inference.runtime import shutdown  # runtime/__init__ imports this module

        if done.is_set():
            return
        done.set()
        if extra is not None:
            try:
                extra()
            except Exception:  # noqa: BLE001 - shutdown must still run
                pass
        shutdown()

    atexit.register(_shutdown)
    if multiprocessing.parent_process() is not None:
        # A multiprocessing child ends with os._exit after run(): atexit never runs there.
        multiprocessing.util.Finalize(None, _shutdown, exitpriority=100)
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def _handler(received: int, frame: FrameType | None, _previous: object = previous) -> None:
            if callable(_previous) and _previous is not signal.default_int_handler:
                _previous(received, frame)  # the process's own graceful stop; shutdown at exit
                return
            _shutdown()
            if callable(_previous):
                _previous(received, frame)
            elif _previous == signal.SIG_DFL:
                signal.signal(received, signal.SIG_DFL)
                signal.raise_signal(received)

        try:
            signal.signal(signum, _handler)
        except ValueError:  # not the main thread: atexit still covers a normal exit
            pass
