"""``PipelineRunner``: one workflow on one video source, observable and controllable.

Wraps inference's ``InferencePipeline.init_with_workflow`` (reached through
``coral_inference.compat``) so that the CLI, the web control plane and the demo
share one way of running a workflow on a file, an HTTP(S) URL, an RTSP stream or a
camera index. The runner owns what ``InferencePipeline`` leaves to the caller:

* a state machine (``PipelineState``) that a crash moves to ``failed`` with the
  error recorded, instead of an exception escaping into the host process;
* rolling statistics (frames, fps, inference latency, drops, detections) computed from the
  frames actually delivered to the sink;
* the latest result (workflow outputs plus the input frame) for snapshots and
  previews, and an ``on_result`` callback for everything else;
* per-pipeline metrics to ``coral_inference.metrics`` when that is installed
  and ``metrics.pipeline_metrics`` is on.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, cast

import numpy as np

from coral_inference.metrics import PipelineMetrics
from coral_inference.pipelines.sources_policy import unreachable
from coral_inference.pipelines.status import PipelineState, RunnerStatus, SourceStatus
from coral_inference.redaction import redact_url
from coral_inference.results import is_detections
from coral_inference.runtime.context import RuntimeContext
from coral_inference.workflow_check import (
    InvalidWorkflowError,
    ensure_plugins_env,
    explain_engine_error,
)

logger = logging.getLogger("coral_inference.pipelines")

# Seconds of history behind the fps / latency figures of ``status()``.
STATS_WINDOW_S = 5.0
# ``InferencePipeline.terminate`` refuses while a source is still INITIALISING.
TERMINATE_ATTEMPTS = 50


class PipelineStartError(RuntimeError):
    """The workflow could not be compiled or the pipeline could not be created."""


class PipelineStateError(RuntimeError):
    """A control call that the pipeline's current state does not allow (e.g. resume when running)."""


# inference's source states while a live stream reconnects after an outage
RECONNECTING_SOURCE_STATES = ("RESTARTING",)
SOURCE_REOPENING_STATES = ("INITIALISING", "ERROR")  # after frames: a reopen attempt


def is_source_unavailable(exc: BaseException | None) -> bool:
    """True when a start failed because the video source could not be opened (camera down)."""
    seen = 0
    while exc is not None and seen < 10:
        if type(exc).__name__ == "SourceConnectionError":
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


@dataclass(frozen=True)
class PipelineResult:
    """What the workflow produced for one frame."""

    frame_id: int
    frame_timestamp: datetime
    frame: np.ndarray  # the input frame, HWC uint8 BGR
    outputs: dict[str, Any] = field(default_factory=dict)  # workflow outputs, not serialised

    def image(self, output: str | None = None) -> np.ndarray:
        """An image output by name, else the first image output, else the input frame."""
        if output is not None:
            found = _as_bgr(self.outputs.get(output))
            if found is None:
                raise KeyError(
                    f"workflow output {output!r} is not an image (outputs: {sorted(self.outputs)})"
                )
            return found
        for value in self.outputs.values():
            found = _as_bgr(value)
            if found is not None:
                return found
        return self.frame

    def detections_count(self) -> int:
        """Detections across every ``sv.Detections`` output of this frame."""
        return sum(len(v) for v in self.outputs.values() if is_detections(v))


def parse_source(source: str | int) -> str | int:
    """A camera index given as text (``"0"``) becomes an int; everything else stays.

    >>> parse_source("0"), parse_source("rtsp://cam/1"), parse_source(2)
    (0, 'rtsp://cam/1', 2)
    """
    if isinstance(source, bool):
        raise TypeError("a video source cannot be a boolean")
    if isinstance(source, int):
        return source
    text = str(source).strip()
    if not text:
        raise ValueError(
            "empty video source: give a file path, a URL, an RTSP URL or a camera index"
        )
    return int(text) if text.isdigit() else text


class PipelineRunner:
    """One workflow running on one video source.

    >>> runner = PipelineRunner(context, workflow, "demo.mp4")  # doctest: +SKIP
    >>> runner.start(); runner.join(60); runner.status()["state"]  # doctest: +SKIP
    'finished'
    """

    def __init__(
        self,
        context: RuntimeContext | None,
        workflow: dict[str, Any],
        source: str | int,
        *,
        pipeline_id: str | None = None,
        max_fps: float | None = None,
        workflows_parameters: dict[str, Any] | None = None,
        on_result: Callable[[PipelineResult], None] | None = None,
        image_input_name: str = "image",
        video_metadata_input_name: str = "video_metadata",
        emit_metrics: bool | None = None,
    ):
        if not isinstance(workflow, dict) or "steps" not in workflow:
            raise ValueError(
                "workflow must be a workflow definition (a dict with 'version', 'inputs', 'steps', 'outputs')"
            )
        self.context = context
        self.workflow = workflow
        self.source = parse_source(source)
        self.pipeline_id = pipeline_id or uuid.uuid4().hex[:12]
        self.max_fps = max_fps
        self.workflows_parameters = dict(workflows_parameters or {})
        self.on_result = on_result
        self.image_input_name = image_input_name
        self.video_metadata_input_name = video_metadata_input_name
        config = getattr(context, "config", None)
        self._emit_metrics = (
            emit_metrics
            if emit_metrics is not None
            else bool(config is not None and config.metrics.pipeline_metrics)
        )
        self._lock = threading.Lock()
        self._state = PipelineState.created
        self._error: str | None = None
        self._pipeline: Any = None
        self._watcher: threading.Thread | None = None
        self._done = threading.Event()
        self._flowing = threading.Event()  # cleared while paused: the result dispatch waits on it
        self._flowing.set()
        self._latest: PipelineResult | None = None
        self._frames = 0
        self._dropped = 0
        self._detections = 0
        self._callback_errors = 0
        self._window: deque[tuple[float, float]] = deque()  # (monotonic arrival, latency s)
        self._source_state: str | None = None
        self._clock = _InferenceClock()
        self._created_at = time.time()
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._metrics: Any = None  # PipelineMetrics, built at start when metrics are on
        self.source_unavailable = False  # it failed because its source could not be opened

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Compile the workflow and start decoding; raises ``PipelineStartError`` on failure.

        The failure is also recorded, so ``status()`` reports it afterwards.
        """
        with self._lock:
            if self._state is not PipelineState.created:
                raise PipelineStateError(
                    f"pipeline {self.pipeline_id} was already started (state {self._state.value})"
                )
            self._state = PipelineState.starting
            self._started_at = time.time()
        try:
            self._metrics = self._pipeline_metrics()
            self._pipeline = self._build_pipeline()
            self._pipeline.start(use_main_thread=False)
        except Exception as exc:
            # A definition error is told by step and field, not as the engine's raw exception.
            problems = explain_engine_error(self.workflow, exc)
            cause: Exception = InvalidWorkflowError(problems) if problems else exc
            self._fail(f"{type(cause).__name__}: {cause}")
            self._done.set()
            raise PipelineStartError(
                f"pipeline {self.pipeline_id} on source {self.source!r} did not start: {type(cause).__name__}: {cause}"
            ) from cause
        with self._lock:
            if self._state is PipelineState.starting:
                self._state = PipelineState.running
            # A terminate that came while the pipeline was being built found nothing to stop.
            raced = self._state is PipelineState.terminated
        self._watcher = threading.Thread(
            target=self._watch, name=f"coral-pipeline-{self.pipeline_id}", daemon=True
        )
        self._watcher.start()
        if raced:
            self._stop_pipeline(self._pipeline)

    def pause(self) -> None:
        """Stop delivering frames; a live source keeps its connection.

        The source is paused where it still can be (a file may be fully decoded
        already), and the result dispatch waits, which holds back the workflow too.
        """
        with self._lock:
            if self._state is not PipelineState.running:
                raise PipelineStateError(
                    f"pipeline {self.pipeline_id} is {self._state.value}, not running"
                )
            self._state = PipelineState.paused
            self._flowing.clear()
        self._source_command("pause_stream")

    def resume(self) -> None:
        with self._lock:
            if self._state is not PipelineState.paused:
                raise PipelineStateError(
                    f"pipeline {self.pipeline_id} is {self._state.value}, not paused"
                )
            self._state = PipelineState.running
        self._source_command("resume_stream")
        self._flowing.set()

    def _source_command(self, name: str) -> None:
        try:
            getattr(self._pipeline, name)()
        except Exception as exc:  # StreamOperationNotAllowedError: e.g. a file already decoded
            logger.debug("pipeline %s: %s refused by the source: %s", self.pipeline_id, name, exc)

    def terminate(self) -> None:
        """Stop the pipeline; idempotent. Call ``join`` to wait for its threads."""
        with self._lock:
            if not self._state.active:
                if self._state is PipelineState.created:
                    self._state = PipelineState.terminated
                    self._done.set()
                return
            was_paused = self._state is PipelineState.paused
            self._state = PipelineState.terminated
            self._ended_at = time.time()
            pipeline = self._pipeline
        self._flowing.set()
        if pipeline is None:
            return
        if was_paused:
            # A paused source does not read its termination command until resumed.
            self._source_command("resume_stream")
        self._stop_pipeline(pipeline)

    def _stop_pipeline(self, pipeline: Any) -> None:
        for attempt in range(TERMINATE_ATTEMPTS):
            try:
                pipeline.terminate()
                return
            except Exception as exc:  # StreamOperationNotAllowedError while a source initialises
                if attempt == TERMINATE_ATTEMPTS - 1:
                    logger.warning("pipeline %s: terminate failed: %s", self.pipeline_id, exc)
                    return
                time.sleep(0.1)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the pipeline has ended; True when it did within ``timeout``."""
        ended = self._done.wait(timeout)
        watcher = self._watcher
        if ended and watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout)
        return ended

    # ------------------------------------------------------------------ observation

    @property
    def state(self) -> PipelineState:
        return self._state

    def latest_result(self) -> PipelineResult | None:
        return self._latest

    def status(self) -> dict[str, Any]:
        """JSON-ready ``RunnerStatus``: state, frames, fps, inference latency, drops, detections, error, sources."""
        with self._lock:
            now = time.monotonic()
            self._trim_window(now)
            window = list(self._window)
            fps = 0.0
            if len(window) >= 2 and window[-1][0] > window[0][0]:
                fps = (len(window) - 1) / (window[-1][0] - window[0][0])
            inference_ms = 1000.0 * sum(w[1] for w in window) / len(window) if window else None
            latest = self._latest
            state = self._state
            if state is PipelineState.running and (
                self._source_state in RECONNECTING_SOURCE_STATES
                # inference reopens a lost live source as RESTARTING -> INITIALISING -> ERROR,
                # over and over while it stays down (helper A, issue 13.2: not "running").
                or (self._frames and self._source_state in SOURCE_REOPENING_STATES)
            ):
                state = PipelineState.reconnecting  # a live source lost mid-stream, being reopened
            return RunnerStatus(
                id=self.pipeline_id,
                state=state,
                frames=self._frames,
                fps=round(fps, 2),
                inference_latency_ms=round(inference_ms, 2) if inference_ms is not None else None,
                dropped_frames=self._dropped,
                detections=latest.detections_count() if latest is not None else 0,
                detections_total=self._detections,
                callback_errors=self._callback_errors,
                error=self._error
                or (unreachable(self.source) if state is PipelineState.reconnecting else None),
                created_at=_iso(self._created_at),
                started_at=_iso(self._started_at),
                ended_at=_iso(self._ended_at),
                last_frame_id=latest.frame_id if latest is not None else None,
                sources=[
                    SourceStatus(reference=redact_source(self.source), state=self._source_state)
                ],
            ).model_dump(mode="json")

    # ------------------------------------------------------------------ internals

    def _build_pipeline(self) -> Any:
        # heavy: Roboflow inference's video stack, imported only when a pipeline is built
        from coral_inference.inference_adapter.stream import InferencePipeline as pipeline_class

        self._ensure_workflow_plugins()
        init_parameters: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if self.context is not None:
            # Plugin blocks resolve "<plugin>.<name>" first: hand them this runner's context
            # rather than whichever one is current in the process.
            for module in self._plugin_modules():
                init_parameters[f"{module}.coral_context"] = self.context
            # inference's public route to custom models: core model blocks resolve
            # coral/<name> ids through this manager, patch or no patch.
            from coral_inference.models.inference_registry import coral_model_manager

            extra["model_manager"] = coral_model_manager(self.context)
        return pipeline_class.init_with_workflow(
            video_reference=self.source,
            # _InferenceClock duck-types inference's PipelineWatchDog (not imported here).
            watchdog=cast(Any, self._clock),
            workflow_specification=self.workflow,
            image_input_name=self.image_input_name,
            video_metadata_input_name=self.video_metadata_input_name,
            workflows_parameters=self.workflows_parameters or None,
            on_prediction=self._on_prediction,
            max_fps=self.max_fps,
            status_update_handlers=[self._on_status_update],
            workflow_init_parameters=init_parameters or None,
            **extra,
        )

    def _plugin_modules(self) -> list[str]:
        config = getattr(self.context, "config", None)
        return list(config.plugins.workflows) if config is not None else []

    def _ensure_workflow_plugins(self) -> None:
        # The engine re-reads WORKFLOWS_PLUGINS at every compilation; add ours, keep the user's.
        ensure_plugins_env(self._plugin_modules())

    def _on_prediction(self, predictions: Any, video_frame: Any) -> None:
        # Called on the pipeline's dispatch thread, one frame at a time (single source).
        if predictions is None or video_frame is None:
            return
        self._flowing.wait()
        if self._state is PipelineState.terminated:
            return
        image = video_frame.image
        if not isinstance(image, np.ndarray):  # GPU decode path hands a torch tensor
            image = image.cpu().numpy()
        result = PipelineResult(
            frame_id=int(video_frame.frame_id),
            frame_timestamp=video_frame.frame_timestamp,
            frame=image,
            outputs=dict(predictions)
            if isinstance(predictions, dict)
            else {"predictions": predictions},
        )
        now = time.monotonic()
        started = self._clock.pop(result.frame_id)
        latency = now - started if started is not None else 0.0
        detections = result.detections_count()
        with self._lock:
            self._latest = result
            self._frames += 1
            self._detections += detections
            self._window.append((now, latency))
            self._trim_window(now)
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:  # a failing consumer must not stop the pipeline
                self._callback_errors += 1
                logger.exception("pipeline %s: on_result callback failed", self.pipeline_id)
        if self._metrics is not None:
            self._metrics.observe(
                predictions,
                video_frame,
                inference_latency_s=latency if started is not None else None,
            )

    def _on_status_update(self, update: Any) -> None:
        event = getattr(update, "event_type", "")
        payload = getattr(update, "payload", None) or {}
        if event == "SOURCE_STATE_UPDATE":
            state = payload.get("new_state")
            self._source_state = getattr(state, "value", None) or str(state)
        elif event == "FRAME_DROPPED":
            self._dropped += 1
        elif event in ("INFERENCE_ERROR", "SOURCE_ERROR", "INFERENCE_RESULTS_DISPATCHING_ERROR"):
            if payload.get("error_type") == "SourceConnectionError":
                self.source_unavailable = (
                    True  # the camera is down: a reason to retry, not a broken workflow
                )
            message = payload.get("error_message") or "unknown error"
            self._fail(
                f"{payload.get('error_type', 'Error')}: {message} ({payload.get('error_context', event)})"
            )

    def _fail(self, error: str) -> None:
        with self._lock:
            if self._state is PipelineState.terminated:
                # Errors of a pipeline being torn down (closed pools, released sources) are noise.
                logger.debug("pipeline %s: error after terminate: %s", self.pipeline_id, error)
                return
            if self._error is None:
                self._error = error
            self._state = PipelineState.failed
            self._ended_at = self._ended_at or time.time()
        logger.error("pipeline %s failed: %s", self.pipeline_id, error)

    def _watch(self) -> None:
        try:
            self._pipeline.join()
        except Exception as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
        if self._state is PipelineState.failed:
            # A crashed workflow leaves its source decoding into a buffer nobody reads.
            try:
                self._pipeline.terminate()
            except Exception:
                logger.debug(
                    "pipeline %s: terminate after failure", self.pipeline_id, exc_info=True
                )
        with self._lock:
            if self._state.active:
                self._state = PipelineState.finished
            self._ended_at = self._ended_at or time.time()
        if self._metrics is not None:
            self._metrics.flush()
        self._done.set()

    def _trim_window(self, now: float) -> None:
        while self._window and now - self._window[0][0] > STATS_WINDOW_S:
            self._window.popleft()

    def _pipeline_metrics(self) -> Any:
        if not self._emit_metrics or self.context is None:
            return None

        return PipelineMetrics(self.context.metrics, self.pipeline_id)


class _InferenceClock:
    """A pipeline watchdog that only notes when each frame entered the workflow.

    Frame timestamps of video files are derived from the file's own clock, so
    latency is measured here instead: from the frame entering the workflow to its
    result reaching the sink.
    """

    MAX_PENDING = 1024

    def __init__(self) -> None:
        self._started: dict[int, float] = {}  # frame id -> monotonic time it entered the workflow
        self._lock = threading.Lock()

    def pop(self, frame_id: int) -> float | None:
        with self._lock:
            return self._started.pop(frame_id, None)

    def on_model_inference_started(self, frames: list[Any]) -> None:
        now = time.monotonic()
        with self._lock:
            for frame in frames:
                self._started[int(frame.frame_id)] = now
            while len(self._started) > self.MAX_PENDING:  # results that never came (errors, drops)
                self._started.pop(next(iter(self._started)))

    def register_video_sources(self, video_sources: Any) -> None:
        pass

    def on_status_update(self, status_update: Any) -> None:
        pass

    def on_model_prediction_ready(self, frames: Any) -> None:
        pass

    def on_model_prediction_completed(self, frames: Any) -> None:
        pass

    def get_report(self) -> None:
        return None


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat() if timestamp else None


# Credentials in stream URLs stay out of status output and logs: one rule, in redaction.
redact_source = redact_url


def _as_bgr(value: Any) -> np.ndarray | None:
    # WorkflowImageData without importing inference: anything with a numpy_image.
    image = getattr(value, "numpy_image", None)
    if isinstance(image, np.ndarray):
        return image
    if isinstance(value, np.ndarray) and value.ndim == 3 and value.dtype == np.uint8:
        return value
    return None
