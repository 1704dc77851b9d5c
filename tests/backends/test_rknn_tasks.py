"""Task heads on the RKNN adapter (RKNNLite test double): NHWC uint8 in, the split layouts out.

The fake ``.rknn`` files are built from the Ultralytics peer fixtures — for segmentation
and keypoints from ``split.onnx``, the rknn_model_zoo layout an NPU build uses — and the
detections must equal the ONNX Runtime path's and Ultralytics' recorded predictions.
"""

from __future__ import annotations

import numpy as np
import pytest

from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
from coral_inference.backends.rknn import RknnBackend
from coral_inference.models import load_package
from coral_inference.models.detector import Detector
from tests.backends.rknn_double import fake_board  # noqa: F401  (fixture)
from tests.models.peer_support import FIXTURES, expected, frames, meta, write_task_package


@pytest.mark.parametrize(
    ("task", "rknn_source"),
    [("segment", "split"), ("pose", "split"), ("obb", "model"), ("classify", "model")],
)
def test_task_heads_on_the_npu_double_match_the_cpu_path(tmp_path, fake_board, task, rknn_source):  # noqa: F811
    root = tmp_path / task
    root.mkdir()
    rknn_file = root / f"{rknn_source}.rknn"
    fake_board.build_rknn(FIXTURES / task / f"{rknn_source}.onnx", rknn_file)
    package = load_package(write_task_package(root, task, "model", rknn=rknn_file))
    npu = Detector(package, RknnBackend().prepare_session(package))
    cpu = Detector(package, OnnxRuntimeBackend().prepare_session(package))
    settings = meta(task)["settings"]
    want = expected(task)
    try:
        assert npu.head.type == {"segment": "yolov8_seg_dfl", "pose": "yolov8_pose_dfl"}.get(
            task, cpu.head.type
        )
        for index, frame in enumerate(frames()):
            if task == "classify":
                a, b = npu.classify(frame), cpu.classify(frame)
                assert (
                    a.top_ids(5).tolist()
                    == b.top_ids(5).tolist()
                    == want[f"f{index}_top5"].tolist()
                )
                continue
            options = {"confidence": settings["conf"], "iou": settings["iou"]}
            a, b = npu.detect(frame, **options), cpu.detect(frame, **options)
            assert len(a) == len(b) == len(want[f"f{index}_cls"])
            order = np.abs(a.xyxy[None] - b.xyxy[:, None]).max(axis=2).argmin(axis=1)
            np.testing.assert_allclose(a.xyxy[order], b.xyxy, atol=1.0)
            assert a.class_id[order].tolist() == b.class_id.tolist()
            if task == "segment":
                agree = (a.mask[order] == b.mask).mean(axis=(1, 2))
                assert agree.min() > 0.99
            if task == "pose":
                np.testing.assert_allclose(
                    a.data["keypoints_xy"][order], b.data["keypoints_xy"], atol=1.0
                )
            if task == "obb":
                np.testing.assert_allclose(a.data["xyxyxyxy"][order], b.data["xyxyxyxy"], atol=1.0)
        assert fake_board.board.input_dtypes == {"uint8"}
    finally:
        npu.close()
        cpu.close()
