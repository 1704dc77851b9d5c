"""A bare Ultralytics ``.onnx`` path is a model: its package is built in the cache on first use."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone

import numpy as np
import pytest

import coral_inference
from coral_inference.backends.registry import BackendRegistry
from coral_inference.config.schema import ModelEntry
from coral_inference.models.catalog import ModelCatalog
from coral_inference.models.errors import PackageNotFoundError
from coral_inference.models.importing import MissingClassesError
from coral_inference.models.loaded import resolve_reference
from coral_inference.models.package import load_package
from tests.models.builders import constant_model
from tests.models.importing.ultra_support import (
    DETECT_FIXTURES,
    assert_same_detections,
    frames,
    recorded,
)


@pytest.fixture
def package_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CORAL_CACHE_DIR", str(tmp_path / "coral-cache"))
    return tmp_path / "coral-cache" / "packages"


def test_bare_onnx_builds_a_cached_package_once_and_says_so(package_cache, caplog):
    path = DETECT_FIXTURES / "yolo26n-nmsfalse.onnx"
    with caplog.at_level(logging.WARNING, logger="coral_inference.models.importing"):
        package, backend = resolve_reference(None, str(path))
    assert backend == "auto"
    assert package.root.parent == package_cache.resolve()
    assert package.head.type == "end2end" and package.classes == ["circle", "square", "triangle"]
    assert any("built one from its Ultralytics metadata" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="coral_inference.models.importing"):
        again, _ = resolve_reference(None, str(path))
    assert again.root == package.root and not caplog.records


def test_bare_onnx_without_metadata_says_to_import_it(package_cache, tmp_path):
    path = tmp_path / "plain.onnx"
    constant_model(path, [np.zeros((1, 6, 84), np.float32)], input_shape=(1, 3, 64, 64))
    with pytest.raises(MissingClassesError, match="coral-runtime models import .* --classes FILE"):
        resolve_reference(None, str(path))


def test_a_config_entry_may_name_a_bare_onnx(package_cache):
    path = DETECT_FIXTURES / "yolo26n-nmsfalse.onnx"
    catalog = ModelCatalog(
        backends=BackendRegistry(),
        entries={"shapes": ModelEntry(package=path, backend="onnxruntime")},
        order=("onnxruntime",),
    )
    package, backend = resolve_reference(catalog, "coral/shapes")
    assert package.root.parent == package_cache.resolve() and backend == "onnxruntime"


def test_a_package_path_is_not_an_onnx_file_and_the_error_says_what_to_do(package_cache):
    path = DETECT_FIXTURES / "yolo26n-nmsfalse.onnx"
    with pytest.raises(PackageNotFoundError, match="not a model package.*models import"):
        load_package(path)
    assert not package_cache.exists()  # nothing built behind the caller's back


@pytest.mark.inference
@pytest.mark.slow  # imports inference.core (~12 s) to run the real Workflows engine
def test_bare_onnx_runs_in_the_coral_object_detection_block(package_cache):
    from coral_inference.inference_adapter.workflows import ExecutionEngine, StepExecutionMode

    previous = os.environ.get("WORKFLOWS_PLUGINS")
    os.environ["WORKFLOWS_PLUGINS"] = "coral_workflows"
    model = "yolov8n.onnx"
    record = recorded()["models"][model]
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "coral/object_detection_model@v1",
                "name": "detect",
                "images": "$inputs.image",
                "model": str(DETECT_FIXTURES / model),
                "confidence": record["conf"],
                "iou_threshold": record["iou"],
            }
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"}
        ],
    }
    coral_inference.init()
    try:
        engine = ExecutionEngine.init(
            workflow_definition=workflow,
            init_parameters={
                "workflows_core.model_manager": None,
                "workflows_core.api_key": None,
                "workflows_core.step_execution_mode": StepExecutionMode.LOCAL,
            },
        )
        for i, (frame, expected) in enumerate(zip(frames(), record["predictions"], strict=True)):
            image = {
                "type": "numpy_object",
                "value": frame,
                "video_metadata": {
                    "video_identifier": "t",
                    "frame_number": i,
                    "fps": 10,
                    "comes_from_video_file": True,
                    "frame_timestamp": datetime.now(timezone.utc).isoformat(),
                },
            }
            result = engine.run(runtime_parameters={"image": image})
            assert_same_detections(result[0]["predictions"], expected, f"block, frame {i}")
    finally:
        coral_inference.shutdown()
        if previous is None:
            os.environ.pop("WORKFLOWS_PLUGINS", None)
        else:
            os.environ["WORKFLOWS_PLUGINS"] = previous
