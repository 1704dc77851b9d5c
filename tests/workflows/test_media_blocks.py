"""The recorder, metrics-sink and WebRTC-preview blocks inside the Workflows ExecutionEngine."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import supervision as sv

import coral_inference

pytestmark = pytest.mark.inference

IMAGE = np.zeros((120, 160, 3), dtype=np.uint8)


@pytest.fixture
def engine(require_inference, tmp_path, monkeypatch):
    """Compile a workflow with Coral's plugin against a runtime writing under ``tmp_path``."""
    monkeypatch.setenv("WORKFLOWS_PLUGINS", "coral_workflows")
    from coral_inference.inference_adapter.workflows import ExecutionEngine

    context = coral_inference.init(
        {
            "storage": {"root": str(tmp_path), "recordings": str(tmp_path / "rec")},
            "recording": {"idle_close_s": 0.5, "queue_frames": 256},
            "metrics": {
                "sinks": {"log": {"type": "jsonl", "path": str(tmp_path / "metrics.jsonl")}}
            },
        }
    )

    def compile_(
        steps: list[dict], init_parameters: dict | None = None, inputs: list[dict] | None = None
    ):
        workflow = {
            "version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"}, *(inputs or [])],
            "steps": steps,
            "outputs": [
                {"type": "JsonField", "name": s["name"], "selector": f"$steps.{s['name']}.*"}
                for s in steps
            ],
        }
        return ExecutionEngine.init(
            workflow_definition=workflow, init_parameters=init_parameters or {}
        )

    compile_.context = context
    yield compile_
    coral_inference.shutdown()


def points(tmp_path) -> list[dict]:
    path = tmp_path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_recorder_writes_inside_the_recordings_root(engine, tmp_path):
    ee = engine(
        [
            {
                "type": "coral/video_recorder@v1",
                "name": "rec",
                "image": "$inputs.image",
                "output_directory": "gate",
            }
        ]
    )
    for _ in range(5):
        result = ee.run(runtime_parameters={"image": IMAGE})[0]["rec"]
    assert result["error_status"] is False
    assert result["file"].startswith(str((tmp_path / "rec" / "gate").resolve())) and result[
        "file"
    ].endswith(".mp4")
    coral_inference.shutdown()
    assert os.path.getsize(result["file"]) > 0


def test_recorder_outside_the_root_is_an_error_not_a_crash(engine):
    ee = engine(
        [
            {
                "type": "coral/video_recorder@v1",
                "name": "rec",
                "image": "$inputs.image",
                "output_directory": "../../tmp",
            }
        ]
    )
    result = ee.run(runtime_parameters={"image": IMAGE})[0]["rec"]
    assert result["error_status"] is True and "outside the recordings root" in result["message"]
    assert (
        ee.run(runtime_parameters={"image": IMAGE})[0]["rec"]["error_status"] is True
    )  # still running


def test_metrics_sink_writes_numbers_and_tags(engine, tmp_path):
    ee = engine(
        [
            {
                "type": "coral/metrics_sink@v1",
                "name": "m",
                "measurement": "gate",
                "fields": {"count": "$inputs.count", "open": True},
                "tags": {"site": "north"},
                "image": "$inputs.image",
            }
        ],
        inputs=[{"type": "WorkflowParameter", "name": "count"}],
    )
    assert ee.run(runtime_parameters={"image": IMAGE, "count": 4})[0]["m"] == {
        "error_status": False,
        "message": "sent 2 field(s)",
    }
    coral_inference.shutdown()
    (point,) = points(tmp_path)
    assert point["fields"] == {"count": 4.0, "open": 1.0} and point["tags"] == {
        "site": "north",
        "source": "image",
    }


@pytest.mark.parametrize(
    ("step", "value", "fragment"),
    [
        ({"sinks": ["influx"]}, 1, "metrics sink 'influx' is not configured"),
        ({}, "many", "field 'count' must be a number, got str 'many'"),
    ],
)
def test_metrics_sink_bad_input_is_reported_and_the_workflow_goes_on(engine, step, value, fragment):
    ee = engine(
        [
            {
                "type": "coral/metrics_sink@v1",
                "name": "m",
                "measurement": "gate",
                "fields": {"count": "$inputs.count"},
                **step,
            }
        ],
        inputs=[{"type": "WorkflowParameter", "name": "count"}],
    )
    for _ in range(2):
        result = ee.run(runtime_parameters={"image": IMAGE, "count": value})[0]["m"]
        assert result["error_status"] is True and fragment in result["message"]


def test_metrics_sink_counts_detections_per_class_and_zeroes_vanished_classes(engine, tmp_path):
    from coral_workflows.blocks.metrics_sink.v1 import MetricsSinkBlockV1

    block = MetricsSinkBlockV1(coral_context=engine.context)

    def dets(names):
        n = len(names)
        return sv.Detections(
            xyxy=np.zeros((n, 4)),
            class_id=np.zeros(n, dtype=int),
            data={"class_name": np.array(names, dtype=str)},
        )

    for names in (["car", "car", "person"], ["car"]):
        result = block.run(
            measurement="traffic",
            fields={"objects": dets(names)},
            tags={},
            image=None,
            sinks=[],
            min_interval_seconds=0,
        )
        assert result["error_status"] is False
    coral_inference.shutdown()
    first, second = (p["fields"] for p in points(tmp_path))
    assert first == {"objects": 3.0, "objects_car": 2.0, "objects_person": 1.0}
    assert second == {"objects": 1.0, "objects_car": 1.0, "objects_person": 0.0}


def test_preview_publishes_to_the_source_channel(engine):
    ee = engine(
        [
            {
                "type": "coral/webrtc_preview@v1",
                "name": "p",
                "image": "$inputs.image",
                "channel": "cam-{source}",
                "overlay": True,
            }
        ]
    )
    result = ee.run(runtime_parameters={"image": IMAGE})[0]["p"]
    assert result == {"error_status": False, "message": "published", "channel": "cam-image"}
    frame = engine.context.streams.latest_frame("cam-image")
    assert frame.shape == IMAGE.shape and frame.any()  # the overlay was drawn on a copy
    assert not IMAGE.any()


def test_disable_sinks_switches_all_three_off(engine, tmp_path):
    steps = [
        {"type": "coral/video_recorder@v1", "name": "rec", "image": "$inputs.image"},
        {"type": "coral/metrics_sink@v1", "name": "m", "measurement": "x", "fields": {"v": 1}},
        {"type": "coral/webrtc_preview@v1", "name": "p", "image": "$inputs.image"},
    ]
    result = engine(steps, init_parameters={"workflows_core.disable_sinks": True}).run(
        runtime_parameters={"image": IMAGE}
    )[0]
    assert all(
        result[name]["error_status"] is False and "disabled" in result[name]["message"]
        for name in ("rec", "m", "p")
    )
    coral_inference.shutdown()
    assert not (tmp_path / "rec").exists() and points(tmp_path) == []


def test_manifests_document_every_field(require_inference):
    from coral_workflows.blocks.metrics_sink.v1 import BlockManifest as Metrics
    from coral_workflows.blocks.video_recorder.v1 import BlockManifest as Recorder
    from coral_workflows.blocks.webrtc_preview.v1 import BlockManifest as Preview

    for manifest in (Recorder, Metrics, Preview):
        extra = manifest.model_config["json_schema_extra"]
        assert {
            "name",
            "version",
            "short_description",
            "long_description",
            "license",
            "block_type",
            "ui_manifest",
        } <= set(extra)
        for name, field in manifest.model_fields.items():
            if name in ("type", "name"):
                continue
            assert field.description and field.examples, (
                f"{manifest.__module__}.{name} lacks description/examples"
            )
