"""``coral/object_detection_model@v1`` in real workflows: detection -> ByteTrack -> line counter -> visualisation.

The acceptance check: over a synthetic demo video, offline, the line counts equal the
scene's ground truth, in ``ExecutionEngine`` and in ``InferencePipeline``; and the core
``roboflow_core/roboflow_object_detection_model@v2`` block with a ``coral/<name>`` model
id gives the same detections as the Coral block.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pytest

import coral_inference

pytestmark = [pytest.mark.inference, pytest.mark.slow]

FPS = 15
DETECTION = {"confidence": 0.4, "iou_threshold": 0.45}


def counting_workflow(truth, detect_step: dict) -> dict:
    (x0, y0), (x1, y1) = truth.line  # vertical, top to bottom: "in" is left to right
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"name": "detect", "images": "$inputs.image", **detect_step},
            {
                "type": "roboflow_core/byte_tracker@v3",
                "name": "track",
                "image": "$inputs.image",
                "detections": "$steps.detect.predictions",
            },
            {
                "type": "roboflow_core/line_counter@v2",
                "name": "count",
                "image": "$inputs.image",
                "detections": "$steps.track.tracked_detections",
                "line_segment": [[x0, y0], [x1, y1]],
                "triggering_anchor": "CENTER",
            },
            {
                "type": "roboflow_core/bounding_box_visualization@v1",
                "name": "draw",
                "image": "$inputs.image",
                "predictions": "$steps.track.tracked_detections",
            },
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"},
            {"type": "JsonField", "name": "count_in", "selector": "$steps.count.count_in"},
            {"type": "JsonField", "name": "count_out", "selector": "$steps.count.count_out"},
            {"type": "JsonField", "name": "annotated", "selector": "$steps.draw.image"},
        ],
    }


CORAL_STEP = {"type": "coral/object_detection_model@v1", "model": "coral-demo", **DETECTION}
CORE_STEP = {
    "type": "roboflow_core/roboflow_object_detection_model@v2",
    "model_id": "coral/coral-demo",
    **DETECTION,
}


@pytest.fixture(scope="module")
def inference_loaded():
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    compat.load_inference_core()
    previous = os.environ.get("WORKFLOWS_PLUGINS")
    os.environ["WORKFLOWS_PLUGINS"] = "coral_workflows"
    yield compat
    if previous is None:
        os.environ.pop("WORKFLOWS_PLUGINS", None)
    else:
        os.environ["WORKFLOWS_PLUGINS"] = previous


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory):
    from coral_inference.demo import write_demo_video

    path = tmp_path_factory.mktemp("video") / "demo.mp4"
    truth = write_demo_video(path, seconds=12, fps=FPS, seed=7)
    assert truth.crossings["left_to_right"] > 0 and truth.crossings["right_to_left"] > 0
    return path, truth


def decoded_frames(path):
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="bgr24")


def engine_for(workflow, model_manager=None):
    # Deferred: the adapter imports inference, which the module's fixture checked and loaded.
    from coral_inference.inference_adapter.workflows import ExecutionEngine, StepExecutionMode

    return ExecutionEngine.init(
        workflow_definition=workflow,
        init_parameters={
            "workflows_core.model_manager": model_manager,
            "workflows_core.api_key": None,
            "workflows_core.step_execution_mode": StepExecutionMode.LOCAL,
        },
    )


def video_input(image, index):
    return {
        "type": "numpy_object",
        "value": image,
        "video_metadata": {
            "video_identifier": "demo",
            "frame_number": index,
            "fps": FPS,
            "comes_from_video_file": True,
            "frame_timestamp": datetime.now(timezone.utc).isoformat(),
        },
    }


def test_manifest_documents_every_field(inference_loaded):
    from coral_workflows.blocks.object_detection_model.v1 import BlockManifest

    schema = BlockManifest.model_json_schema()
    extra = BlockManifest.model_config["json_schema_extra"]
    assert {
        "name",
        "version",
        "short_description",
        "long_description",
        "license",
        "block_type",
        "ui_manifest",
    } <= set(extra)
    assert extra["block_type"] == "model" and extra["version"] == "v1"
    for name, field in schema["properties"].items():
        if name not in ("type", "name"):  # inherited from WorkflowBlockManifest
            assert field.get("description") and field.get("examples"), (
                f"field {name} lacks a description or examples"
            )


def test_counts_match_the_ground_truth_in_execution_engine(inference_loaded, demo_video):
    path, truth = demo_video
    coral_inference.init()
    engine = engine_for(counting_workflow(truth, CORAL_STEP))
    frames = 0
    for index, image in enumerate(decoded_frames(path)):
        result = engine.run(runtime_parameters={"image": video_input(image, index)})[0]
        frames += 1
    assert frames == truth.frame_count
    assert (result["count_in"], result["count_out"]) == (
        truth.crossings["left_to_right"],
        truth.crossings["right_to_left"],
    )
    predictions = result["predictions"]
    assert set(predictions.data) >= {
        "class_name",
        "detection_id",
        "image_dimensions",
        "prediction_type",
        "parent_id",
        "parent_coordinates",
        "root_parent_id",
        "inference_id",
    }
    assert result["annotated"].numpy_image.shape == (truth.height, truth.width, 3)


def test_counts_match_the_ground_truth_in_inference_pipeline(inference_loaded, demo_video):
    path, truth = demo_video
    coral_inference.init()
    results = []

    def on_prediction(prediction, video_frame):
        results.append((video_frame.frame_id, prediction))

    from coral_inference.inference_adapter.stream import InferencePipeline

    pipeline = InferencePipeline.init_with_workflow(
        video_reference=str(path),
        workflow_specification=counting_workflow(truth, CORAL_STEP),
        on_prediction=on_prediction,
    )
    pipeline.start()
    pipeline.join()
    assert len(results) == truth.frame_count
    last = max(results, key=lambda item: item[0])[1]
    assert (last["count_in"], last["count_out"]) == (
        truth.crossings["left_to_right"],
        truth.crossings["right_to_left"],
    )


def test_core_model_block_with_a_coral_model_id_gives_the_same_detections(
    inference_loaded, demo_video
):
    from coral_inference.models.inference_registry import coral_model_manager

    path, truth = demo_video
    context = coral_inference.init()
    manager = coral_model_manager(context, fallback=None)
    coral_engine = engine_for(counting_workflow(truth, CORAL_STEP))
    core_engine = engine_for(counting_workflow(truth, CORE_STEP), model_manager=manager)
    compared = 0
    for index, image in enumerate(decoded_frames(path)):
        if index % 6:
            continue
        ours = coral_engine.run(runtime_parameters={"image": video_input(image, index)})[0]
        core = core_engine.run(runtime_parameters={"image": video_input(image, index)})[0]
        a, b = ours["predictions"], core["predictions"]
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-6)
        assert a.class_id.tolist() == b.class_id.tolist()
        assert a.data["class_name"].tolist() == b.data["class_name"].tolist()
        compared += len(a)
    assert compared > 20
    assert (core["count_in"], core["count_out"]) == (ours["count_in"], ours["count_out"])
    # Both blocks run on the one session the runtime context caches.
    assert manager["coral/coral-demo"].loaded is context.get_model("coral-demo")


def test_batch_of_frames_and_a_bad_class_filter(inference_loaded):
    coral_inference.init()
    workflow = {
        "version": "1.0",
        "inputs": [
            {"type": "WorkflowImage", "name": "image"},
            {"type": "WorkflowParameter", "name": "classes"},
        ],
        "steps": [
            {
                "type": "coral/object_detection_model@v1",
                "name": "detect",
                "images": "$inputs.image",
                "model": "coral-demo",
                "class_filter": "$inputs.classes",
            }
        ],
        "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.detect.*"}],
    }
    from coral_inference.demo import random_still

    stills = [random_still(seed, 640, 480) for seed in (1001, 1002, 1003)]
    engine = engine_for(workflow)
    results = engine.run(
        runtime_parameters={"image": [s.image for s in stills], "classes": ["square"]}
    )
    assert len(results) == 3
    for _still, result in zip(stills, results):
        out = result["predictions"]
        assert out["model_id"] == "coral/coral-demo" and out["inference_id"]
        assert set(out["predictions"].data["class_name"].tolist()) <= {"square"}
    with pytest.raises(Exception, match=r"'hexagon' is not a class of model 'coral-demo'"):
        engine.run(runtime_parameters={"image": stills[0].image, "classes": ["hexagon"]})
