"""One compiled model and its pool of async infer requests (``openvino.AsyncInferQueue``).

``run`` is what Coral's detectors call, from as many threads as they like: each call
hands its tensor to the queue, which starts it on the next idle infer request, and
waits for that request's callback. With the THROUGHPUT hint the compiled model has
several streams and the queue one request per stream, so ``concurrency`` callers
(a batch spread by ``Detector.detect_batch``, or several pipelines sharing the
model) keep every stream busy. ``run_batch`` submits a whole batch before waiting.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np


class OpenVinoSessionClosedError(RuntimeError):
    """``run`` after ``close``."""


class OpenVinoSession:
    def __init__(
        self,
        compiled: Any,
        queue: Any,
        *,
        model: str,
        path: Path,
        device: str,
        input_spec: Any = None,
        head: Any = None,
        cache_dir: Path | None = None,
    ):
        self._compiled = compiled
        self._queue: Any = queue
        self.model = model
        self.path = path
        self.device = device
        self.input_spec = input_spec
        self.head = head
        self.cache_dir = cache_dir
        self.output_count = len(compiled.outputs)
        self._submit_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0  # most frames that were running at once (tests, describe)
        self._closed = False
        queue.set_callback(self._completed)

    @property
    def concurrency(self) -> int:
        """Infer requests in the pool: how many frames run at once."""
        return len(self._queue)

    @property
    def compiled_model(self) -> Any:
        return self._compiled

    def _completed(self, request: Any, future: Future[list[np.ndarray]]) -> None:
        # Runs on OpenVINO's thread; the request is reused next, so its outputs are copied.
        with self._count_lock:
            self._in_flight -= 1
        try:
            outputs = [
                np.array(request.get_output_tensor(i).data) for i in range(self.output_count)
            ]
        except Exception as exc:  # handed to the caller, never lost on OpenVINO's thread
            future.set_exception(exc)
        else:
            future.set_result(outputs)

    def submit(self, tensor: np.ndarray) -> Future[list[np.ndarray]]:
        """Start ``tensor`` on the next idle request (waits for one); the future gets outputs."""
        if self._closed:
            raise OpenVinoSessionClosedError(f"openvino session of model {self.model!r} is closed")
        future: Future[list[np.ndarray]] = Future()
        # start_async waits for an idle request; one submitter at a time keeps the
        # queue's bookkeeping simple while the requests themselves run in parallel.
        with self._submit_lock:
            with self._count_lock:
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            try:
                self._queue.start_async({0: np.ascontiguousarray(tensor)}, future)
            except Exception:
                with self._count_lock:
                    self._in_flight -= 1
                raise
        return future

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The raw output tensors of one preprocessed input, in the model's output order."""
        return self.submit(tensor).result()

    def run_batch(self, tensors: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Every tensor of a batch in flight at once (as many as there are requests)."""
        futures = [self.submit(t) for t in tensors]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.wait_all()
        self._queue = _ClosedQueue()
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


class _ClosedQueue:
    def __len__(self) -> int:
        return 0


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
