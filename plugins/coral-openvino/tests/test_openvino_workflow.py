"""``coral/object_detection_model@v1`` with ``backend: openvino`` in a real ``ExecutionEngine``."""

from __future__ import annotations

import os

import pytest

# Imports Roboflow inference (~12 s) and runs two engines over demo frames.
pytestmark = [pytest.mark.inference, pytest.mark.slow]

STEP = {
    "type": "coral/object_detection_model@v1",
    "name": "detect",
    "images": "$inputs.image",
    "model": "coral-demo",
    "confidence": 0.4,
}


def workflow(backend: str) -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{**STEP, "backend": backend}],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"}
        ],
    }


def test_the_coral_block_on_openvino_detects_what_onnxruntime_does(
    runtime, demo_frames, same_detections, monkeypatch
):
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")  # a failure in CI (CORAL_REQUIRE_ALL=1)
    from coral_inference.inference_adapter.workflows import ExecutionEngine, StepExecutionMode

    monkeypatch.setitem(os.environ, "WORKFLOWS_PLUGINS", "coral_workflows")
    runtime()
    engines = {
        backend: ExecutionEngine.init(
            workflow_definition=workflow(backend),
            init_parameters={
                "workflows_core.model_manager": None,
                "workflows_core.api_key": None,
                "workflows_core.step_execution_mode": StepExecutionMode.LOCAL,
            },
        )
        for backend in ("onnxruntime", "openvino")
    }
    matched = 0
    for index, frame in enumerate(demo_frames[:5]):
        out = {
            b: e.run(runtime_parameters={"image": frame})[0]["predictions"]
            for b, e in engines.items()
        }
        matched += same_detections(
            out["onnxruntime"], out["openvino"], STEP["confidence"], f"frame {index}"
        )
    assert matched >= 10
