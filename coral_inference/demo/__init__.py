"""Synthetic demo material: seeded shape scenes, demo videos with ground truth, mAP.

``scenes`` draws the scenes the bundled demo detector (``coral_inference/models/zoo``)
was trained on; ``evaluation`` scores detections against their ground truth. Neither
imports Roboflow ``inference``.
"""

from coral_inference.demo.scenes import (
    SHAPE_CLASSES,
    Frame,
    GroundTruth,
    Scene,
    random_still,
    traffic_scene,
    write_demo_video,
)

__all__ = [
    "SHAPE_CLASSES",
    "Frame",
    "GroundTruth",
    "Scene",
    "random_still",
    "traffic_scene",
    "write_demo_video",
]
