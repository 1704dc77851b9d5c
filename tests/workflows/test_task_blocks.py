"""Coral's segmentation, keypoint and classification blocks in real workflows, and the same
packages through Roboflow's core model blocks with ``coral/<name>`` ids.

Over synthetic videos (offline, the bundled demo packages):

* segmentation -> ByteTrack -> ``roboflow_core/time_in_zone@v3`` -> ``mask_visualization``;
* keypoints -> ``keypoint_visualization`` (edges from the package's skeleton);
* classification -> ``continue_if`` on the top class -> a step that runs only then;

each in ``ExecutionEngine`` with Coral's block and with the core block
(``roboflow_instance_segmentation_model@v2``, ``roboflow_keypoint_detection_model@v2``,
``roboflow_classification_model@v2`` / ``roboflow_multi_label_classification_model@v2``)
fed the same ``coral/<name>`` package through ``coral_model_manager``, which must give the
same predictions (masks: the core path goes through inference's polygons, so per-instance
IoU); and all three Coral blocks in one ``InferencePipeline`` over a video file.

One module, module-scoped fixtures: importing inference costs ~12 s.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pytest

import coral_inference

pytestmark = [pytest.mark.inference, pytest.mark.slow]

FPS = 15
ZONE = [[0, 0], [320, 0], [320, 480], [0, 480]]  # the left half of a 640x480 frame


@pytest.fixture(scope="module")
def compat():
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


@pytest.fixture
def context(compat):
    # tests/conftest.py shuts the runtime down around every test: one context per test
    return coral_inference.init()


@pytest.fixture
def manager(context):
    from coral_inference.models.inference_registry import coral_model_manager

    return coral_model_manager(context, fallback=None)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A traffic video (segmentation), the same with pose-safe turns (keypoints), held
    classification stills; with their ground truth."""
    from coral_inference.demo.scenes import traffic_scene, write_demo_video
    from coral_inference.demo.tasks import classification_video, pose_scene, write_video

    root = tmp_path_factory.mktemp("videos")
    seg_truth = write_demo_video(root / "seg.mp4", seconds=4, fps=FPS, seed=31)
    scene = pose_scene(traffic_scene(32, 640, 480, frame_count=60))
    write_video(root / "pose.mp4", (scene.render(i).image for i in range(60)), FPS)
    labels = classification_video(root / "cls.mp4", seed=33, stills=12, hold=5)
    return {
        "seg": (root / "seg.mp4", seg_truth),
        "pose": (root / "pose.mp4", scene),
        "cls": (root / "cls.mp4", labels),
    }


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


def video_input(image, index, name):
    return {
        "type": "numpy_object",
        "value": image,
        "video_metadata": {
            "video_identifier": name,
            "frame_number": index,
            "fps": FPS,
            "comes_from_video_file": True,
            "frame_timestamp": datetime.fromtimestamp(
                1_700_000_000 + index / FPS, timezone.utc
            ).isoformat(),
        },
    }


def segmentation_workflow(model_step: dict) -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "name": "segment",
                "images": "$inputs.image",
                "confidence": 0.4,
                "iou_threshold": 0.45,
                **model_step,
            },
            {
                "type": "roboflow_core/byte_tracker@v3",
                "name": "track",
                "image": "$inputs.image",
                "detections": "$steps.segment.predictions",
            },
            {
                "type": "roboflow_core/time_in_zone@v3",
                "name": "zone",
                "image": "$inputs.image",
                "detections": "$steps.track.tracked_detections",
                "zone": ZONE,
            },
            {
                "type": "roboflow_core/mask_visualization@v1",
                "name": "masks",
                "image": "$inputs.image",
                "predictions": "$steps.segment.predictions",
            },
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.segment.predictions"},
            {"type": "JsonField", "name": "in_zone", "selector": "$steps.zone.timed_detections"},
            {"type": "JsonField", "name": "annotated", "selector": "$steps.masks.image"},
        ],
    }


def keypoint_workflow(model_step: dict, edges: bool = True) -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "name": "pose",
                "images": "$inputs.image",
                "confidence": 0.4,
                "iou_threshold": 0.45,
                **model_step,
            },
            {
                "type": "roboflow_core/keypoint_visualization@v1",
                "name": "draw",
                "image": "$inputs.image",
                "predictions": "$steps.pose.predictions",
                **(
                    {
                        "annotator_type": "edge",
                        "edges": [[1, 2], [1, 3], [1, 4], [1, 5]],
                    }  # 1-based skeleton
                    if edges
                    else {"annotator_type": "vertex"}
                ),
            },
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.pose.predictions"},
            {"type": "JsonField", "name": "annotated", "selector": "$steps.draw.image"},
        ],
    }


def classification_workflow(model_step: dict, wanted: str = "triangle") -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"name": "classify", "images": "$inputs.image", **model_step},
            {
                "type": "roboflow_core/continue_if@v1",
                "name": "gate",
                "condition_statement": {
                    "type": "StatementGroup",
                    "statements": [
                        {
                            "type": "BinaryStatement",
                            "left_operand": {
                                "type": "DynamicOperand",
                                "operand_name": "prediction",
                                "operations": [
                                    {
                                        "type": "ClassificationPropertyExtract",
                                        "property_name": "top_class",
                                    }
                                ],
                            },
                            "comparator": {"type": "=="},
                            "right_operand": {"type": "StaticOperand", "value": wanted},
                        }
                    ],
                },
                "evaluation_parameters": {"prediction": "$steps.classify.predictions"},
                "next_steps": ["$steps.gated"],
            },
            {
                "type": "roboflow_core/property_definition@v1",
                "name": "gated",
                "data": "$steps.classify.predictions",
                "operations": [
                    {
                        "type": "ClassificationPropertyExtract",
                        "property_name": "top_class_confidence",
                    }
                ],
            },
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.classify.predictions"},
            {"type": "JsonField", "name": "gated", "selector": "$steps.gated.output"},
        ],
    }


def _same_detections(a, b, masks: bool = False) -> None:
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-6)
    assert a.class_id.tolist() == b.class_id.tolist()
    assert a.data["class_name"].tolist() == b.data["class_name"].tolist()
    assert set(a.data) == set(b.data), set(a.data) ^ set(b.data)
    assert a.data["prediction_type"].tolist() == b.data["prediction_type"].tolist()
    if masks:
        assert a.mask is not None and b.mask is not None and a.mask.shape == b.mask.shape
        inter = (a.mask & b.mask).sum(axis=(1, 2))
        union = (a.mask | b.mask).sum(axis=(1, 2))
        iou = inter / np.maximum(union, 1)
        # The core block rebuilds masks from inference's polygon (the largest outer contour,
        # filled): same masks up to the outline, except where a mask has a hole or a second
        # piece, which the polygon format cannot carry.
        assert np.median(iou) >= 0.95 and np.mean(iou >= 0.9) >= 0.8, iou


def test_segmentation_zone_and_masks_match_the_core_block_with_a_coral_id(
    compat, context, manager, videos
):
    path, truth = videos["seg"]
    coral = engine_for(
        segmentation_workflow(
            {"type": "coral/instance_segmentation_model@v1", "model": "coral-demo-seg"}
        ),
    )
    core = engine_for(
        segmentation_workflow(
            {
                "type": "roboflow_core/roboflow_instance_segmentation_model@v2",
                "model_id": "coral/coral-demo-seg",
            }
        ),
        model_manager=manager,
    )
    compared = zoned = 0
    for index, image in enumerate(decoded_frames(path)):
        ours = coral.run(runtime_parameters={"image": video_input(image, index, "seg-a")})[0]
        theirs = core.run(runtime_parameters={"image": video_input(image, index, "seg-b")})[0]
        a, b = ours["predictions"], theirs["predictions"]
        _same_detections(a, b, masks=True)
        assert a.mask.shape[1:] == (truth.height, truth.width)
        assert len(a) >= len(truth.frames[index].xyxy) - 2  # found the shapes it shows
        za, zb = ours["in_zone"], theirs["in_zone"]
        assert len(za) == len(zb) and np.all(za.xyxy[:, 0] < 330)
        np.testing.assert_allclose(za.data["time_in_zone"], zb.data["time_in_zone"], atol=1e-6)
        compared += len(a)
        zoned += len(za)
    assert compared > 3 * truth.frame_count and zoned > truth.frame_count
    assert float(za.data["time_in_zone"].max()) > 1.0  # tracked shapes accumulate time in the zone
    annotated = ours["annotated"].numpy_image
    assert annotated.shape == image.shape and not np.array_equal(annotated, image)
    assert a.data["prediction_type"][0] == "instance-segmentation"
    assert ours["predictions"].data["class_name"].dtype.kind in "OU"
    assert manager["coral/coral-demo-seg"].loaded is context.get_model("coral-demo-seg")


def test_keypoints_and_their_visualisation_match_the_core_block_with_a_coral_id(
    compat, manager, videos
):
    from coral_inference.demo.tasks import KEYPOINT_NAMES

    path, scene = videos["pose"]
    coral = engine_for(
        keypoint_workflow(
            {"type": "coral/keypoint_detection_model@v1", "model": "coral-demo-pose"}
        ),
    )
    core = engine_for(
        keypoint_workflow(
            {
                "type": "roboflow_core/roboflow_keypoint_detection_model@v2",
                "model_id": "coral/coral-demo-pose",
            }
        ),
        model_manager=manager,
    )
    compared = 0
    for index, image in enumerate(decoded_frames(path)):
        if index % 4:
            continue
        ours = coral.run(runtime_parameters={"image": video_input(image, index, "pose")})[0]
        theirs = core.run(runtime_parameters={"image": video_input(image, index, "pose")})[0]
        a, b = ours["predictions"], theirs["predictions"]
        _same_detections(a, b)
        for key in (
            "keypoints_xy",
            "keypoints_confidence",
            "keypoints_class_id",
            "keypoints_class_name",
        ):
            assert a.data[key].shape == b.data[key].shape, key
            assert a.data[key].dtype == b.data[key].dtype, key
        np.testing.assert_allclose(a.data["keypoints_xy"], b.data["keypoints_xy"], atol=1e-4)
        np.testing.assert_allclose(
            a.data["keypoints_confidence"], b.data["keypoints_confidence"], atol=1e-6
        )
        assert a.data["keypoints_class_id"].tolist() == b.data["keypoints_class_id"].tolist()
        assert a.data["keypoints_class_name"].tolist() == b.data["keypoints_class_name"].tolist()
        if len(a):
            assert a.data["keypoints_class_name"][0].tolist() == list(
                KEYPOINT_NAMES
            )  # threshold 0: all kept
        compared += len(a)
        annotated = ours["annotated"].numpy_image
        assert not np.array_equal(annotated, image) or not len(a)
    assert compared > 20


def test_a_keypoint_threshold_drops_and_pads_as_the_core_block_does(compat, manager, videos):
    path, _ = videos["pose"]
    image = next(iter(decoded_frames(path)))
    step = {"keypoint_confidence": 0.5}
    ours = engine_for(
        keypoint_workflow(
            {"type": "coral/keypoint_detection_model@v1", "model": "coral-demo-pose", **step},
            edges=False,  # padded rows hold fewer keypoints than the skeleton names
        ),
    ).run(runtime_parameters={"image": image})[0]["predictions"]
    theirs = engine_for(
        keypoint_workflow(
            {
                "type": "roboflow_core/roboflow_keypoint_detection_model@v2",
                "model_id": "coral/coral-demo-pose",
                **step,
            },
            edges=False,
        ),
        model_manager=manager,
    ).run(runtime_parameters={"image": image})[0]["predictions"]
    assert (
        ours.data["keypoints_class_name"].tolist() == theirs.data["keypoints_class_name"].tolist()
    )
    np.testing.assert_allclose(ours.data["keypoints_xy"], theirs.data["keypoints_xy"], atol=1e-4)
    names = ours.data["keypoints_class_name"]
    assert (names == "").any(), "circles' vertices score below 0.5, so rows are padded"


@pytest.mark.parametrize(
    ("package", "core_type"),
    [
        ("coral-demo-cls", "roboflow_core/roboflow_classification_model@v2"),
        ("coral-demo-cls-multilabel", "roboflow_core/roboflow_multi_label_classification_model@v2"),
    ],
)
def test_classification_gates_on_the_top_class_like_the_core_block(
    compat, manager, videos, package, core_type
):
    from coral_inference.demo.scenes import SHAPE_CLASSES

    path, labels = videos["cls"]
    coral = engine_for(
        classification_workflow({"type": "coral/classification_model@v1", "model": package})
    )
    core = engine_for(
        classification_workflow({"type": core_type, "model_id": f"coral/{package}"}),
        model_manager=manager,
    )
    gated = correct = 0
    for index, image in enumerate(decoded_frames(path)):
        ours = coral.run(runtime_parameters={"image": image})[0]
        theirs = core.run(runtime_parameters={"image": image})[0]
        a, b = dict(ours["predictions"]), dict(theirs["predictions"])
        for volatile in ("inference_id", "time"):
            assert volatile in a and volatile in b
            a.pop(volatile), b.pop(volatile)
        assert a == b
        assert ours["gated"] == theirs["gated"]
        if package == "coral-demo-cls":
            correct += int(a["top"] == SHAPE_CLASSES[labels[index]])
            assert (ours["gated"] is not None) == (a["top"] == "triangle")
        else:
            assert set(a["predictions"]) == set(SHAPE_CLASSES) and isinstance(
                a["predicted_classes"], list
            )
            correct += int(SHAPE_CLASSES[labels[index]] in a["predicted_classes"])
        gated += int(ours["gated"] is not None)
    assert correct >= 0.9 * len(labels)
    if package == "coral-demo-cls":  # (a multi-label result has no single top class to gate on)
        assert 0 < gated < len(labels), "the video shows triangles and other shapes"


def test_all_three_blocks_in_one_inference_pipeline(compat, context, videos):
    path, truth = videos["seg"]
    steps = [
        {
            "type": "coral/instance_segmentation_model@v1",
            "name": "segment",
            "images": "$inputs.image",
            "model": "coral-demo-seg",
        },
        {
            "type": "roboflow_core/mask_visualization@v1",
            "name": "masks",
            "image": "$inputs.image",
            "predictions": "$steps.segment.predictions",
        },
        {
            "type": "coral/keypoint_detection_model@v1",
            "name": "pose",
            "images": "$inputs.image",
            "model": "coral-demo-pose",
        },
        {
            "type": "roboflow_core/keypoint_visualization@v1",
            "name": "points",
            "image": "$steps.masks.image",
            "predictions": "$steps.pose.predictions",
            "annotator_type": "vertex",
        },
        {
            "type": "coral/classification_model@v1",
            "name": "classify",
            "images": "$inputs.image",
            "model": "coral-demo-cls",
        },
    ]
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": steps,
        "outputs": [
            {"type": "JsonField", "name": "masks", "selector": "$steps.segment.predictions"},
            {"type": "JsonField", "name": "keypoints", "selector": "$steps.pose.predictions"},
            {"type": "JsonField", "name": "top", "selector": "$steps.classify.predictions"},
            {"type": "JsonField", "name": "annotated", "selector": "$steps.points.image"},
        ],
    }
    results = []
    from coral_inference.inference_adapter.stream import InferencePipeline

    pipeline = InferencePipeline.init_with_workflow(
        video_reference=str(path),
        workflow_specification=workflow,
        on_prediction=lambda prediction, frame: results.append((frame.frame_id, prediction)),
    )
    pipeline.start()
    pipeline.join()
    assert len(results) == truth.frame_count
    for _, prediction in results:
        assert prediction["masks"].mask is not None
        assert "keypoints_xy" in prediction["keypoints"].data or len(prediction["keypoints"]) == 0
        assert prediction["top"]["prediction_type"] == "classification"
    assert sum(len(p["masks"]) for _, p in results) > 3 * truth.frame_count


def test_a_package_of_another_task_is_refused_with_the_block_to_use(compat, manager):
    from coral_inference.demo.scenes import random_still

    image = random_still(5, 320, 240).image
    with pytest.raises(
        Exception,
        match=r"'coral-demo-cls' is a package of task 'classification'.*use coral/classification_model@v1",
    ):
        engine_for(
            segmentation_workflow(
                {"type": "coral/instance_segmentation_model@v1", "model": "coral-demo-cls"}
            ),
        ).run(runtime_parameters={"image": image})
    with pytest.raises(
        Exception,
        match=r"coral/coral-demo: a package of task 'object-detection' cannot answer an InstanceSegmentationInferenceRequest",
    ):
        engine_for(
            segmentation_workflow(
                {
                    "type": "roboflow_core/roboflow_instance_segmentation_model@v2",
                    "model_id": "coral/coral-demo",
                }
            ),
            model_manager=manager,
        ).run(runtime_parameters={"image": image})
