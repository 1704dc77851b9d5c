"""Async infer requests: a batch, or pipelines sharing a model, run on all streams at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from coral_openvino import OpenVinoBackend, OpenVinoSessionClosedError

from coral_inference.models import load_package
from coral_inference.models.detector import Detector


@pytest.fixture(scope="module")
def session():
    package = load_package("coral-demo")
    session = OpenVinoBackend(
        {"performance_hint": "THROUGHPUT", "streams": 2, "infer_requests": 4, "cache": False}
    ).prepare_session(package)
    yield session
    session.close()


@pytest.fixture(scope="module")
def tensors():
    rng = np.random.default_rng(3)
    return [rng.random((1, 3, 320, 320), dtype=np.float32) for _ in range(8)]


@pytest.fixture(scope="module")
def expected(session, tensors):
    return [session.run(t) for t in tensors]  # one at a time


def test_a_batch_is_in_flight_at_once_and_gives_the_same_outputs(session, tensors, expected):
    assert session.concurrency == 4 and session.describe()["streams"] == 2
    session.peak_in_flight = 0
    results = session.run_batch(tensors)
    assert session.peak_in_flight >= 2, "the batch ran one request at a time"
    for got, want in zip(results, expected, strict=True):
        assert len(got) == len(want)
        # Streams may split the work differently: allow float rounding.
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_several_callers_share_the_requests(session, tensors, expected):
    """What several pipelines sharing one loaded model do: run() from many threads."""
    results: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def caller(offset: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(offset, len(tensors), 2):
                results[i] = session.run(tensors[i])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k % 2,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    for i, want in enumerate(expected):
        np.testing.assert_allclose(results[i][0], want[0], rtol=1e-4, atol=1e-4)


def test_detect_batch_spreads_frames_over_the_requests(session, demo_frames):
    package = load_package("coral-demo")
    detector = Detector(package, session)
    session.peak_in_flight = 0
    batch = detector.detect_batch(demo_frames[:8], confidence=0.4)
    assert session.peak_in_flight >= 2
    for frame, detections in zip(demo_frames[:8], batch, strict=True):
        np.testing.assert_allclose(
            detector.detect(frame, confidence=0.4).xyxy, detections.xyxy, atol=1e-2
        )


def test_a_closed_session_refuses_to_run(tensors):
    session = OpenVinoBackend({"cache": False, "infer_requests": 1}).prepare_session(
        load_package("coral-demo")
    )
    session.close()
    session.close()  # idempotent
    with pytest.raises(
        OpenVinoSessionClosedError, match="openvino session of model 'coral-demo' is closed"
    ):
        session.run(tensors[0])


CYCLES_SCRIPT = textwrap.dedent(
    """
    import faulthandler, sys
    faulthandler.dump_traceback_later(float(sys.argv[2]), exit=True)  # a hang fails, with stacks
    import numpy as np
    from coral_openvino import OpenVinoBackend
    from coral_inference.models import load_package
    from coral_inference.models.detector import Detector
    package = load_package("coral-demo-cls-multilabel")
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for cycle in range(int(sys.argv[1])):
        detector = Detector(package, OpenVinoBackend({"cache": False}).prepare_session(package))
        detector.classify(frame)
        detector.close()
    print("cycles done")
    """
)


@pytest.mark.slow
def test_sessions_opened_run_and_closed_in_a_loop_never_hang():
    """Regression: a Python callback on OpenVINO's threads deadlocked ``close`` against it.

    With ``AsyncInferQueue`` and a Python callback this loop hung after 400-800 cycles
    (~30-55 s on the 2-core CI machine; one CI run hung there for 90 minutes). Why a loop:
    the deadlock needs a callback thread to be at its end while ``close`` frees the model.
    """
    cycles, watchdog = 400, 150
    done = subprocess.run(
        [sys.executable, "-c", CYCLES_SCRIPT, str(cycles), str(watchdog)],
        capture_output=True,
        text=True,
        timeout=watchdog + 60,
        env={**os.environ, "DISABLE_VERSION_CHECK": "True"},
    )
    assert done.returncode == 0 and "cycles done" in done.stdout, done.stderr[-3000:]
