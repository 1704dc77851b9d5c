"""13.11: a deleted pipeline's Prometheus series leave /metrics (no stale fps for ever)."""

from __future__ import annotations

import re
import time

from prometheus_client import CollectorRegistry, generate_latest

from coral_inference.metrics.hub import MetricsHub
from coral_inference.metrics.prometheus import PrometheusSink
from tests.webapp.support import HEADERS


def test_the_sink_forgets_every_series_of_a_pipeline():
    registry = CollectorRegistry()
    hub = MetricsHub(registry=registry)
    hub.add_sink(PrometheusSink("prom", registry))
    for pid in ("keep", "gone"):
        hub.emit(
            "coral_pipeline",
            {"fps": 5.0, "frames_total": 10},
            {"pipeline_id": pid, "source": "0"},
            types={"frames_total": "counter"},
        )
        hub.emit(
            "coral_detections",
            {"count": 2},
            {"pipeline_id": pid, "source": "0", "class_name": "car"},
        )
    assert hub.series_tag_values("pipeline_id") == {"keep", "gone"}
    assert hub.forget_series("pipeline_id", {"gone"}) == 3
    text = generate_latest(registry).decode()
    assert 'pipeline_id="gone"' not in text and 'pipeline_id="keep"' in text
    # A pipeline id used again starts its counter from zero, not from the forgotten total.
    hub.emit(
        "coral_pipeline",
        {"fps": 1.0, "frames_total": 4},
        {"pipeline_id": "gone", "source": "0"},
        types={"frames_total": "counter"},
    )
    assert re.search(
        r'coral_pipeline_frames_total\{pipeline_id="gone",source="0"\} 4\.0',
        generate_latest(registry).decode(),
    )


def test_deleting_a_pipeline_removes_its_series_from_metrics(client):
    created = client.post(
        "/api/v1/pipelines",
        headers=HEADERS,
        json={"workflow_file": "blur.json", "source": "rtsp://cam.local/live"},
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    hub = client.app.state.services.monitor.metrics_hub
    hub.emit("coral_pipeline", {"fps": 7.5}, {"pipeline_id": pid, "source": "0"})
    metrics = client.get("/metrics", headers=HEADERS).text
    assert f'coral_pipeline_fps{{pipeline_id="{pid}",source="0"}} 7.5' in metrics
    time.sleep(0.5)  # a monitoring round (0.2 s here) keeps a live pipeline's series
    assert f'pipeline_id="{pid}"' in client.get("/metrics", headers=HEADERS).text
    assert client.delete(f"/api/v1/pipelines/{pid}", headers=HEADERS).status_code in (200, 204)
    deadline = time.monotonic() + 10
    while f'pipeline_id="{pid}"' in client.get("/metrics", headers=HEADERS).text:
        assert time.monotonic() < deadline, "the deleted pipeline's series are still exported"
        time.sleep(0.1)
