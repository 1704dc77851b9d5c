"""The ``coral_model_registry`` patch: coral/<name> ids in inference's own RoboflowModelRegistry."""

from __future__ import annotations

import os

import numpy as np
import pytest

import coral_inference

pytestmark = [pytest.mark.inference]

TARGET_MODULE = "inference.core.registries.roboflow"


@pytest.fixture(scope="module")
def roboflow_registry():
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    module = compat.import_module(TARGET_MODULE)
    types = compat.import_module("inference.models.utils").ROBOFLOW_MODEL_TYPES
    return module.RoboflowModelRegistry, types


@pytest.fixture
def sentinel_original(roboflow_registry, monkeypatch):
    """Stand-in for the original get_model, so non-coral ids never reach the Roboflow API."""
    registry_class, _ = roboflow_registry
    calls = []

    def original(self, model_id, api_key, countinference=None, service_secret=None):
        calls.append(model_id)
        return f"roboflow model class for {model_id}"

    monkeypatch.setattr(registry_class, "get_model", original)
    return original, calls


def test_off_by_default_and_described(roboflow_registry):
    context = coral_inference.init()
    row = next(r for r in context.describe()["patches"] if r["name"] == "coral_model_registry")
    assert row["state"] == "off" and row["reason"] == "off by default"
    assert "roboflow_core/roboflow_object_detection_model" in row["description"]


def test_enabled_patch_resolves_coral_ids_and_passes_others_through(
    roboflow_registry, sentinel_original
):
    registry_class, types = roboflow_registry
    _, calls = sentinel_original
    context = coral_inference.init({"patches": {"coral_model_registry": True}})
    assert context.is_patch_enabled("coral_model_registry")
    registry = registry_class(types)
    model_class = registry.get_model("coral/coral-demo", None)
    assert (
        model_class.__name__ == "CoralPackageModel" and model_class.task_type == "object-detection"
    )
    # Not Coral packages: a Roboflow project called "coral", and any other id.
    assert registry.get_model("coral/3", "key") == "roboflow model class for coral/3"
    assert (
        registry.get_model("people/7", "key", countinference=True)
        == "roboflow model class for people/7"
    )
    assert calls == ["coral/3", "people/7"]


def test_shutdown_restores_the_exact_original(roboflow_registry, sentinel_original):
    registry_class, _ = roboflow_registry
    original, _ = sentinel_original
    coral_inference.init({"patches": {"coral_model_registry": True}})
    assert vars(registry_class)["get_model"] is not original
    coral_inference.shutdown()
    assert vars(registry_class)["get_model"] is original


def test_model_manager_built_by_inference_runs_coral_packages_with_the_patch(roboflow_registry):
    """What an inference server does: its own ModelManager over RoboflowModelRegistry, offline."""
    from coral_inference.demo import random_still
    from coral_inference.inference_adapter.models import ModelManager
    from coral_inference.inference_adapter.workflows import ExecutionEngine, StepExecutionMode

    registry_class, types = roboflow_registry
    context = coral_inference.init({"patches": {"coral_model_registry": True}})
    manager = ModelManager(model_registry=registry_class(types))
    engine = ExecutionEngine.init(
        workflow_definition={
            "version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [
                {
                    "type": "roboflow_core/roboflow_object_detection_model@v2",
                    "name": "detect",
                    "images": "$inputs.image",
                    "model_id": "coral/coral-demo",
                    "confidence": 0.4,
                }
            ],
            "outputs": [
                {
                    "type": "JsonField",
                    "name": "predictions",
                    "selector": "$steps.detect.predictions",
                }
            ],
        },
        init_parameters={
            "workflows_core.model_manager": manager,
            "workflows_core.api_key": None,
            "workflows_core.step_execution_mode": StepExecutionMode.LOCAL,
        },
    )
    still = random_still(4242, 640, 480)
    predictions = engine.run(runtime_parameters={"image": still.image})[0]["predictions"]
    direct = context.get_model("coral-demo").detect(still.image, confidence=0.4, iou=0.3)
    assert len(predictions) == len(direct) > 0
    np.testing.assert_allclose(predictions.xyxy, direct.xyxy, atol=1e-3)
    assert predictions.data["class_name"].tolist() == direct.data["class_name"].tolist()


def test_patch_is_refused_outside_its_supported_range(roboflow_registry, monkeypatch):
    from coral_inference.patches.model_registry import CoralModelRegistryPatch

    patch = CoralModelRegistryPatch()
    monkeypatch.setattr(patch, "supported", ">=9")
    outcome = patch.enable(None)
    assert (
        outcome.state == "refused" and "outside the patch's supported range >=9" in outcome.reason
    )


@pytest.mark.server
@pytest.mark.slow
def test_inference_server_runs_core_model_block_with_coral_id(roboflow_registry, tmp_path):
    """An inference HTTP server we do not build: the patch, switched on in CORAL_CONFIG, does it."""
    import base64
    import subprocess
    import sys
    import time
    from pathlib import Path

    import cv2
    import httpx

    from coral_inference.demo import random_still
    from tests.conftest import free_port

    repo = Path(__file__).resolve().parents[2]
    config = tmp_path / "coral.yaml"
    config.write_text("patches:\n  coral_model_registry: true\n")
    port, log = free_port(), tmp_path / "server.log"
    env = {
        **os.environ,
        "WORKFLOWS_PLUGINS": "coral_workflows",
        "CORAL_CONFIG": str(config),
        "DISABLE_VERSION_CHECK": "True",
        "ENABLE_STREAM_API": "False",
        "PYTHONPATH": str(repo),
    }
    env.pop("ROBOFLOW_API_KEY", None)
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, str(repo / "tests/server/inference_http.py"), str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not start:\n" + log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        still = random_still(77, 640, 480)
        encoded = base64.b64encode(cv2.imencode(".png", still.image)[1]).decode()
        # The Coral block initialises Coral in the server (from CORAL_CONFIG), which applies the patch
        # before the core block loads its model at run time.
        workflow = {
            "version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [
                {
                    "type": "coral/object_detection_model@v1",
                    "name": "coral",
                    "images": "$inputs.image",
                    "model": "coral-demo",
                    "confidence": 0.4,
                    "iou_threshold": 0.3,
                },
                {
                    "type": "roboflow_core/roboflow_object_detection_model@v2",
                    "name": "core",
                    "images": "$inputs.image",
                    "model_id": "coral/coral-demo",
                    "confidence": 0.4,
                    "iou_threshold": 0.3,
                },
            ],
            "outputs": [
                {"type": "JsonField", "name": "coral", "selector": "$steps.coral.predictions"},
                {"type": "JsonField", "name": "core", "selector": "$steps.core.predictions"},
            ],
        }
        response = httpx.post(
            f"{url}/workflows/run",
            timeout=120,
            json={
                "specification": workflow,
                "inputs": {"image": {"type": "base64", "value": encoded}},
            },
        )
        assert response.status_code == 200, response.text[:2000] + log.read_text()[-2000:]
        output = response.json()["outputs"][0]

        def boxes(result):
            return sorted(
                (p["class"], round(p["x"], 1), round(p["y"], 1), round(p["width"], 1))
                for p in result["predictions"]
            )

        assert len(output["core"]["predictions"]) > 0
        assert boxes(output["core"]) == boxes(output["coral"])
    finally:
        server.terminate()
        server.wait(timeout=30)
