"""One compiled model and its pool of infer requests.

``run`` is what Coral's detectors call, from as many threads as they like: each call
takes an idle infer request from the pool, starts it and waits for it on the calling
thread. With the THROUGHPUT hint the compiled model has several streams and the pool
one request per stream, so ``concurrency`` callers (a batch spread by
``Detector.detect_batch``, or several pipelines sharing the model) keep every stream
busy. ``run_batch`` starts a whole batch (as many frames as there are requests) before
waiting.

No Python code runs on OpenVINO's threads: ``AsyncInferQueue``'s Python callback did,
and that thread then needed the GIL while ``close`` — holding the GIL — destroyed the
queue and the compiled model, which join those threads. The two waited on each other
forever (reproduced with openvino 2026.4.1: create, run and close a session in a loop;
it hung within minutes, and one CI run hung there for good).
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np


class OpenVinoSessionClosedError(RuntimeError):
    """``run`` after ``close``."""


class OpenVinoSession:
    def __init__(
        self,
        compiled: Any,
        requests: list[Any],
        *,
        model: str,
        path: Path,
        device: str,
        input_spec: Any = None,
        head: Any = None,
        cache_dir: Path | None = None,
    ):
        if not requests:
            raise ValueError(f"openvino session of model {model!r} needs at least one request")
        self._compiled = compiled
        self._requests: list[Any] = list(requests)
        self._idle: list[Any] = list(requests)
        self._changed = threading.Condition()
        self.model = model
        self.path = path
        self.device = device
        self.input_spec = input_spec
        self.head = head
        self.cache_dir = cache_dir
        self.output_count = len(compiled.outputs)
        self._in_flight = 0
        self.peak_in_flight = 0  # most frames that were running at once (tests, describe)
        self._closed = False

    @property
    def concurrency(self) -> int:
        """Infer requests in the pool: how many frames run at once."""
        return len(self._requests)

    @property
    def compiled_model(self) -> Any:
        return self._compiled

    def _closed_error(self) -> OpenVinoSessionClosedError:
        return OpenVinoSessionClosedError(f"openvino session of model {self.model!r} is closed")

    def _take(self, *, wait: bool) -> Any | None:
        """An idle request (waits for one when ``wait``; else None when all are busy)."""
        with self._changed:
            while True:
                if self._closed:
                    raise self._closed_error()
                if self._idle:
                    request = self._idle.pop()
                    self._in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                    return request
                if not wait:
                    return None
                self._changed.wait()

    def _give(self, request: Any) -> None:
        with self._changed:
            self._in_flight -= 1
            self._idle.append(request)
            self._changed.notify_all()

    def _start(self, request: Any, tensor: np.ndarray) -> None:
        # Copies the input into the request's own tensor; the GIL is released while it runs.
        request.start_async({0: np.ascontiguousarray(tensor)})

    def _finish(self, request: Any) -> list[np.ndarray]:
        request.wait()  # releases the GIL
        # The request is reused next, so its outputs are copied.
        return [np.array(request.get_output_tensor(i).data) for i in range(self.output_count)]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The raw output tensors of one preprocessed input, in the model's output order."""
        request = self._take(wait=True)
        try:
            self._start(request, tensor)
            return self._finish(request)
        finally:
            self._give(request)

    def run_batch(self, tensors: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Every tensor of a batch in flight at once (as many as there are idle requests).

        Holding requests while waiting for more could deadlock two batches, so when no
        request is idle the batch reuses its own oldest one instead of waiting for another.
        """
        results: list[list[np.ndarray] | None] = [None] * len(tensors)
        running: deque[tuple[int, Any]] = deque()
        try:
            for index, tensor in enumerate(tensors):
                request = self._take(wait=not running)
                if request is None:  # every request is busy: reuse this batch's oldest
                    done, request = running.popleft()
                    try:
                        results[done] = self._finish(request)
                    except BaseException:
                        self._give(request)
                        raise
                try:
                    self._start(request, tensor)
                except BaseException:
                    self._give(request)
                    raise
                running.append((index, request))
            while running:
                done, request = running.popleft()
                try:
                    results[done] = self._finish(request)
                finally:
                    self._give(request)
        finally:
            for _, request in running:  # after an error: wait for what still runs, give it back
                try:
                    request.wait()
                finally:
                    self._give(request)
        finished: list[list[np.ndarray]] = []
        for outputs in results:
            assert outputs is not None  # every index was finished above
            finished.append(outputs)
        return finished

    def close(self) -> None:
        """Refuses new runs, waits for those in flight, then frees the requests and model."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()  # callers waiting for a request get the closed error
            while self._in_flight:
                self._changed.wait()
            self._idle.clear()
            self._requests = []
        self._compiled = None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": "openvino",
            "artifact": str(self.path),
            "device": self.device,
            "infer_requests": self.concurrency,
            "peak_in_flight": self.peak_in_flight,
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
        }
        if self._compiled is not None:
            for key, name in (
                ("execution_devices", "EXECUTION_DEVICES"),
                ("streams", "NUM_STREAMS"),
                ("precision", "INFERENCE_PRECISION_HINT"),
            ):
                try:
                    info[key] = _plain(self._compiled.get_property(name))
                except Exception:  # a device that does not report the property
                    info[key] = None
        return info


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
