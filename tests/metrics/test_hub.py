"""MetricsHub: validation, non-blocking emit, JSON lines, Prometheus exposition, pipeline metrics."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
import supervision as sv
from prometheus_client import generate_latest

from coral_inference.metrics import (
    InvalidMetricError,
    MetricsHub,
    PipelineMetrics,
    UnknownSinkError,
)
from coral_inference.metrics.jsonl import JsonLinesSink
from coral_inference.metrics.prometheus import PrometheusSink, metric_name
from coral_inference.metrics.sinks import QueuedSink


class BlockedSink(QueuedSink):
    """A sink whose server never answers until released."""

    def __init__(self, max_queue: int):
        self.release = threading.Event()
        super().__init__("blocked", max_queue=max_queue, batch_size=1, flush_interval_s=0.01)

    def handle_batch(self, batch):
        self.release.wait()
        self.stats.sent += len(batch)


def exposition(hub: MetricsHub) -> str:
    return generate_latest(hub.prometheus_registry).decode()


@pytest.mark.parametrize(
    ("fields", "tags", "fragment"),
    [
        ({"v": "abc"}, {}, "field 'v' must be a number, got str 'abc'"),
        ({"v": float("nan")}, {}, "field 'v' must be finite"),
        ({}, {}, "give at least one field"),
        ({"v": [1, 2]}, {}, "field 'v' must be a number, got list"),
        ({"v": 1}, {"zone": None}, "tag 'zone' must be a string"),
    ],
)
def test_bad_points_are_refused_with_the_offending_key(fields, tags, fragment):
    hub = MetricsHub()
    with pytest.raises(InvalidMetricError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        hub.emit("m", fields, tags)
    assert hub.rejected == 1
    hub.close()


def test_unknown_sink_name_lists_the_configured_ones():
    hub = MetricsHub()
    hub.add_sink(PrometheusSink("prom", hub.prometheus_registry))
    with pytest.raises(
        UnknownSinkError, match=r"'influx' is not configured; configured sinks: \['prom'\]"
    ):
        hub.emit("m", {"v": 1}, sinks=["influx"])
    hub.close()


def test_emit_never_waits_for_a_stuck_sink_and_counts_drops():
    hub = MetricsHub()
    sink = BlockedSink(max_queue=10)
    hub.add_sink(sink)
    for i in range(1000):
        hub.emit("m", {"v": i})
    stats = hub.stats()["blocked"]
    # One point is in the stuck write, ten wait, the rest were dropped — and every emit returned.
    assert stats["dropped"] >= 1000 - 11
    assert stats["queued"] <= 10
    sink.release.set()
    hub.close()
    assert hub.stats()["blocked"]["sent"] + hub.stats()["blocked"]["dropped"] == 1000


def test_jsonl_sink_appends_one_object_per_point(tmp_path):
    hub = MetricsHub({"file": JsonLinesSink("file", tmp_path / "m" / "metrics.jsonl")})
    hub.emit("people", {"in": 3, "present": True}, {"site": "gate", "floor": 2})
    hub.emit("people", {"in": 4})
    hub.close()
    lines = [
        json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [p["fields"] for p in lines] == [{"in": 3.0, "present": 1.0}, {"in": 4.0}]
    assert lines[0]["tags"] == {"site": "gate", "floor": "2"}
    assert lines[0]["measurement"] == "people" and lines[0]["time_ns"] < lines[1]["time_ns"]


def test_prometheus_gauges_counters_and_histograms_with_labels():
    hub = MetricsHub()
    hub.add_sink(PrometheusSink("prom", hub.prometheus_registry))
    hub.emit(
        "line counter",
        {"in": 5, "total": 10, "latency": 0.02},
        {"zone": "a"},
        types={"total": "counter", "latency": "histogram"},
    )
    hub.emit(
        "line counter",
        {"in": 7, "total": 13, "latency": 0.2},
        {"zone": "a"},
        types={"total": "counter", "latency": "histogram"},
    )
    hub.emit(
        "line counter", {"in": 1}, {"zone": "a", "extra": "x"}
    )  # labels are fixed by the first point
    text = exposition(hub)
    assert 'line_counter_in{zone="a"} 1.0' in text
    assert 'line_counter_total{zone="a"} 13.0' in text  # a running total, not a sum of totals
    assert 'line_counter_latency_count{zone="a"} 2.0' in text
    assert hub.sink("prom").label_conflicts == 1
    assert 'coral_metrics_sink_sent_total{sink="prom"} 3.0' in text
    hub.close()


def test_metric_names_are_sanitised():
    assert metric_name("people counter", "in-zone") == "people_counter_in_zone"
    assert metric_name("3d", "x") == "_3d_x"


def test_hub_from_config_builds_named_sinks_and_is_closed_with_the_context(tmp_path):
    import coral_inference

    context = coral_inference.init(
        {
            "storage": {"root": str(tmp_path)},
            "metrics": {
                "sinks": {
                    "log": {"type": "jsonl", "path": str(tmp_path / "m.jsonl")},
                    "prom": {"type": "prometheus"},
                }
            },
        }
    )
    hub = context.metrics
    assert context.metrics is hub
    assert sorted(hub.sink_names) == ["log", "prom"]
    hub.emit("m", {"v": 1}, sinks=["log"])
    coral_inference.shutdown()
    assert (tmp_path / "m.jsonl").read_text().count("\n") == 1


def _frame(source: int, frame_id: int, age_s: float = 0.05):
    return SimpleNamespace(
        source_id=source,
        frame_id=frame_id,
        frame_timestamp=datetime.now() - timedelta(seconds=age_s),
    )


def _detections(names: list[str]) -> sv.Detections:
    n = len(names)
    return sv.Detections(
        xyxy=np.tile([[0, 0, 10, 10]], (n, 1)).astype(float),
        class_id=np.zeros(n, dtype=int),
        confidence=np.ones(n),
        data={"class_name": np.array(names)},
    )


def _captured(frame_id: int, captured_at: float):
    return SimpleNamespace(
        source_id=0, frame_id=frame_id, frame_timestamp=datetime.fromtimestamp(captured_at)
    )


def test_pipeline_metrics_reports_fps_latency_drops_and_classes(tmp_path):
    hub = MetricsHub({"log": JsonLinesSink("log", tmp_path / "m.jsonl")})
    wall = 1_800_000_000.0  # injected: each frame reaches the sink 50 ms after its capture
    metrics = PipelineMetrics(hub, "p1", interval_s=1.0, wall_clock=lambda: wall)
    clock = 100.0
    for frame_id in (
        1,
        2,
        3,
        6,
        7,
    ):  # frames 4 and 5 never arrived; the fifth frame closes a 1 s window
        frame = _captured(frame_id, wall - 0.05)
        metrics.observe(
            {"predictions": _detections(["car", "car", "person"])},
            frame,
            inference_latency_s=0.01,
            now=clock,
        )
        clock += 0.25
        wall += 0.25
    metrics.observe(
        {"predictions": _detections([])}, _captured(8, wall - 0.05), now=clock
    )  # next window
    hub.close()
    points = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    pipeline = [p for p in points if p["measurement"] == "coral_pipeline"]
    assert len(pipeline) == 1
    fields = pipeline[0]["fields"]
    assert fields["fps"] == pytest.approx(5 / 1.0)
    assert fields["dropped_frames_total"] == 2 and fields["frames_total"] == 5
    # two latencies, two names: capture -> result (e2e) and workflow run (inference)
    assert fields["e2e_latency_ms"] == pytest.approx(50) and fields[
        "e2e_latency_max_ms"
    ] == pytest.approx(50)
    assert fields["inference_latency_ms"] == pytest.approx(10) and "latency_ms" not in fields
    assert pipeline[0]["tags"] == {"pipeline_id": "p1", "source": "0"}
    per_class = {
        p["tags"]["class_name"]: p["fields"]
        for p in points
        if p["measurement"] == "coral_detections"
    }
    assert per_class["car"]["total"] == 10 and per_class["person"]["total"] == 5
    assert per_class["car"]["per_frame"] == pytest.approx(2.0)


def test_pipeline_metrics_accepts_multi_source_lists_and_never_raises():
    hub = MetricsHub()
    hub.add_sink(PrometheusSink("prom", hub.prometheus_registry))
    metrics = PipelineMetrics(hub, "multi", interval_s=0.5)
    for i in range(3):
        metrics.observe([{}, None], [_frame(0, i), _frame(1, i)], now=10.0 + i * 0.5)
    metrics.observe(object(), object())  # garbage in: nothing raised
    text = exposition(hub)
    assert 'coral_pipeline_fps{pipeline_id="multi",source="0"}' in text
    assert 'coral_pipeline_fps{pipeline_id="multi",source="1"}' in text
    hub.close()
