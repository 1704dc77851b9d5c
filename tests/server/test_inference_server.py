"""Roboflow's own inference HTTP server, started with WORKFLOWS_PLUGINS=coral_workflows, runs coral blocks."""

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import pytest

from tests.conftest import free_port

LAUNCHER = Path(__file__).with_name("inference_http.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inference_server(tmp_path_factory):
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("server")
    log = workdir / "server.log"
    config = workdir / "coral.yaml"
    config.write_text(f"patches:\n  coral_model_registry: true\nstorage:\n  root: {workdir}\n")
    env = {
        **os.environ,
        "WORKFLOWS_PLUGINS": "coral_workflows",
        "DISABLE_VERSION_CHECK": "True",
        "ENABLE_STREAM_API": "False",
        "PYTHONPATH": str(REPO),
        "CORAL_CONFIG": str(config),
    }
    env.pop("ROBOFLOW_API_KEY", None)
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail("inference server did not start:\n" + log.read_text()[-3000:])
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def still():
    from coral_inference.demo import random_still

    frame = random_still(21, 640, 480)
    return frame, base64.b64encode(cv2.imencode(".png", frame.image)[1]).decode()


def test_server_runs_a_workflow_with_the_coral_detection_block(inference_server):
    frame, encoded = still()
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "coral/object_detection_model@v1",
                "name": "detect",
                "images": "$inputs.image",
                "model": "coral-demo",
                "confidence": 0.4,
                "iou_threshold": 0.45,
            }
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"},
            {"type": "JsonField", "name": "model_id", "selector": "$steps.detect.model_id"},
        ],
    }
    response = httpx.post(
        f"{inference_server}/workflows/run",
        timeout=120,
        json={"specification": workflow, "inputs": {"image": {"type": "base64", "value": encoded}}},
    )
    assert response.status_code == 200, response.text[:2000]
    output = response.json()["outputs"][0]
    predictions = output["predictions"]["predictions"]
    assert output["model_id"] == "coral/coral-demo"
    assert output["predictions"]["image"] == {"width": 640, "height": 480}
    # The same image through Coral in this process gives the same detections.
    import coral_inference

    local = (
        coral_inference.init({"platform": "cpu"})
        .get_model("coral-demo")
        .detect(frame.image, confidence=0.4, iou=0.45)
    )
    served = sorted(
        (p["class"], round(p["x"] - p["width"] / 2), round(p["y"] - p["height"] / 2))
        for p in predictions
    )
    mine = sorted(
        (str(n), round(b[0]), round(b[1])) for n, b in zip(local.data["class_name"], local.xyxy)
    )
    assert served == mine, (served, mine)
    assert all(p["detection_id"] and 0.4 <= p["confidence"] <= 1 for p in predictions)


def test_server_reports_an_unknown_coral_block(inference_server):
    _, encoded = still()
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "coral/object_detection_modle@v1",
                "name": "detect",
                "images": "$inputs.image",
                "model": "coral-demo",
            }
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"}
        ],
    }
    response = httpx.post(
        f"{inference_server}/workflows/run",
        timeout=120,
        json={"specification": workflow, "inputs": {"image": {"type": "base64", "value": encoded}}},
    )
    assert response.status_code == 400
    assert "coral/object_detection_modle@v1" in response.text


def test_server_runs_a_core_model_block_with_a_coral_model_id(inference_server):
    """No coral block in the workflow: CORAL_CONFIG makes the plugin initialise Coral and its patch."""
    frame, encoded = still()
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "roboflow_core/roboflow_object_detection_model@v2",
                "name": "detect",
                "images": "$inputs.image",
                "model_id": "coral/coral-demo",
                "confidence": 0.4,
                "iou_threshold": 0.45,
            }
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"}
        ],
    }
    response = httpx.post(
        f"{inference_server}/workflows/run",
        timeout=120,
        json={"specification": workflow, "inputs": {"image": {"type": "base64", "value": encoded}}},
    )
    assert response.status_code == 200, response.text[:2000]
    classes = sorted(
        p["class"] for p in response.json()["outputs"][0]["predictions"]["predictions"]
    )
    assert classes and set(classes) <= {"circle", "square", "triangle"}
