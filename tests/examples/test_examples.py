"""Every example runs as a user would run it: workflows on the demo video, the CLI, the notebook."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
WORKFLOWS = sorted((EXAMPLES / "workflows").glob("*.json"))
FPS, SECONDS, SEED = 15, 10, 11


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory):
    from coral_inference.demo import write_demo_video

    path = tmp_path_factory.mktemp("video") / "demo.mp4"
    truth = write_demo_video(path, seconds=SECONDS, fps=FPS, seed=SEED)
    assert truth.crossings["left_to_right"] and truth.crossings["right_to_left"]
    return path, truth


@pytest.fixture(scope="module")
def engine_ready():
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    compat.load_inference_core()


def example_config(tmp_path):
    from coral_inference.config import load_config

    return load_config(
        EXAMPLES / "runtime.yaml",
        environ={},
        overrides=[
            f"storage.root={tmp_path}",
            f"storage.recordings={tmp_path / 'recordings'}",
            f"metrics.sinks.log.path={tmp_path / 'metrics.jsonl'}",
        ],
    )


def run_example(path, video, tmp_path):
    import coral_inference
    from coral_inference.pipelines.runner import PipelineRunner

    context = coral_inference.init(example_config(tmp_path))
    results = []
    runner = PipelineRunner(
        context, json.loads(path.read_text()), str(video), on_result=results.append
    )
    runner.start()
    assert runner.join(timeout=300), f"{path.name} did not finish"
    return context, runner.status(), results


def test_examples_are_present():
    assert {p.name for p in WORKFLOWS} == {
        "line_counting.json",
        "event_clips.json",
        "preview.json",
        "core_model_coral_id.json",
        "segmentation_zone.json",
        "keypoints.json",
        "classification_gate.json",
        "core_models_coral_ids.json",
    }
    assert (EXAMPLES / "runtime_web.yaml").is_file() and (EXAMPLES / "notebook.ipynb").is_file()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_example_workflow_runs_on_the_demo_video(workflow, demo_video, engine_ready, tmp_path):
    video, truth = demo_video
    context, status, results = run_example(workflow, video, tmp_path)
    assert (
        status["state"] == "finished" and status["error"] is None and status["callback_errors"] == 0
    )
    assert status["frames"] == truth.frame_count == len(results)
    last = results[-1].outputs
    if workflow.stem == "line_counting":
        assert (last["count_in"], last["count_out"]) == (
            truth.crossings["left_to_right"],
            truth.crossings["right_to_left"],
        )
        segments = list((tmp_path / "recordings" / "line-counting").rglob("*.mp4"))
        assert segments and str(segments[0]) == last["recording"]
    elif workflow.stem == "event_clips":
        seen = [r.outputs["many_triangles"] for r in results]  # more than three triangles in view
        assert any(seen) and not all(seen), (
            "the demo video has frames with more and with fewer than four triangles"
        )
        assert list((tmp_path / "recordings" / "triangle-events").rglob("*.mp4"))
    elif workflow.stem == "preview":
        assert context.streams.latest_frame("preview") is not None
    elif workflow.stem == "core_model_coral_id":
        assert context.is_patch_enabled("coral_model_registry")
        assert sum(len(r.outputs["predictions"]) for r in results) > truth.frame_count
    elif workflow.stem == "segmentation_zone":
        assert sum(len(r.outputs["predictions"]) for r in results) > truth.frame_count
        assert all(r.outputs["predictions"].mask is not None for r in results)
        assert any(len(r.outputs["in_zone"]) for r in results)
    elif workflow.stem == "keypoints":
        assert sum(len(r.outputs["predictions"]) for r in results) > truth.frame_count
        assert any(
            (
                r.outputs["predictions"].data.get("keypoints_class_name", np.array([])) == "centre"
            ).any()
            for r in results
        )
    elif workflow.stem == "classification_gate":
        tops = [r.outputs["predictions"]["top"] for r in results]
        gated = [r.outputs["wanted_confidence"] for r in results]
        assert all((g is not None) == (t == "triangle") for t, g in zip(tops, gated))
    elif workflow.stem == "core_models_coral_ids":
        assert context.is_patch_enabled("coral_model_registry")
        assert sum(len(r.outputs["masks"]) for r in results) > truth.frame_count
        assert all(r.outputs["masks"].mask is not None for r in results)
        assert sum(len(r.outputs["keypoints"]) for r in results) > truth.frame_count
        assert all(
            r.outputs["classification"]["prediction_type"] == "classification" for r in results
        )


def test_core_model_block_finds_coral_models_without_the_patch(demo_video, engine_ready, tmp_path):
    """Coral's own pipelines hand inference a model manager that knows coral/<name> ids."""
    import coral_inference
    from coral_inference.pipelines.runner import PipelineRunner

    video, truth = demo_video
    loaded = example_config(tmp_path)
    config = loaded.descriptor.model_copy(update={"patches": {"coral_model_registry": False}})
    context = coral_inference.init(config)
    assert not context.is_patch_enabled("coral_model_registry")
    results = []
    workflow = json.loads((EXAMPLES / "workflows" / "core_model_coral_id.json").read_text())
    runner = PipelineRunner(context, workflow, str(video), on_result=results.append)
    runner.start()
    assert runner.join(timeout=300) and runner.status()["state"] == "finished", runner.status()
    assert sum(len(r.outputs["predictions"]) for r in results) > truth.frame_count


def test_cli_run_writes_results_and_a_summary(demo_video, tmp_path):
    video, truth = demo_video
    output = tmp_path / "results.jsonl"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "coral_inference.cli.main",
            "run",
            str(EXAMPLES / "workflows" / "line_counting.json"),
            "--video",
            str(video),
            "-c",
            str(EXAMPLES / "runtime.yaml"),
            "--output",
            str(output),
            "--json",
            "--set",
            f"storage.recordings={tmp_path / 'rec'}",
            "--set",
            f"metrics.sinks.log.path={tmp_path / 'm.jsonl'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["state"] == "finished" and summary["frames"] == truth.frame_count
    assert str(output) in summary["files"] and any(f.endswith(".mp4") for f in summary["files"])
    lines = output.read_text().splitlines()
    assert len(lines) == truth.frame_count
    final = json.loads(lines[-1])["outputs"]
    assert (final["count_in"], final["count_out"]) == (
        truth.crossings["left_to_right"],
        truth.crossings["right_to_left"],
    )


def test_cli_run_names_the_step_and_field_of_a_bad_workflow(demo_video, tmp_path):
    video, _ = demo_video
    workflow = json.loads((EXAMPLES / "workflows" / "preview.json").read_text())
    workflow["steps"][0]["type"] = "coral/object_detection_modle@v1"
    del workflow["steps"][1]["predictions"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(workflow))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "coral_inference.cli.main",
            "run",
            str(bad),
            "--video",
            str(video),
            "--no-env",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 2
    assert (
        "step 'detect', field 'type': unknown block type 'coral/object_detection_modle@v1'; "
        "did you mean 'coral/object_detection_model@v1'?"
    ) in out.stderr
    assert "step 'boxes', field 'predictions': Field required" in out.stderr


def test_notebook_executes_without_errors(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    env_before = os.environ.get("WORKFLOWS_PLUGINS")
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    assert os.environ.get("WORKFLOWS_PLUGINS") == env_before  # the kernel is its own process
    printed = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
    )
    assert any(name in printed for name in ("circle", "square", "triangle"))


def test_web_api_names_the_step_and_field_of_a_bad_workflow(demo_video, engine_ready, tmp_path):
    from fastapi.testclient import TestClient

    from coral_inference.webapp import create_web_app
    from tests.webapp.support import HEADERS, web_config

    video, _ = demo_video
    workflow = json.loads((EXAMPLES / "workflows" / "preview.json").read_text())
    workflow["steps"][1]["predictions"] = (
        "$steps.detector.predictions"  # no step is called 'detector'
    )
    with TestClient(create_web_app(web_config(tmp_path))) as client:
        response = client.post(
            "/api/v1/pipelines", headers=HEADERS, json={"workflow": workflow, "source": str(video)}
        )
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert "step 'boxes', field 'predictions': Workflow references '$steps.detector'" in message
