"""Shared helpers for the import tests: the recorded Ultralytics fixtures and a box matcher."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

DETECT_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "peers" / "ultralytics-detect"


def recorded() -> dict:
    return json.loads((DETECT_FIXTURES / "predictions.json").read_text())


def frames() -> list[np.ndarray]:
    return [cv2.imread(str(DETECT_FIXTURES / name)) for name in recorded()["frames"]]


def assert_same_detections(detections, expected: dict, where: str, tolerance: float = 1.0) -> None:
    """Same count; each recorded box has a Coral box of its class and score within 1 px."""
    got_xyxy = np.asarray(detections.xyxy, np.float32).reshape(-1, 4)
    want_xyxy = np.asarray(expected["xyxy"], np.float32).reshape(-1, 4)
    assert len(got_xyxy) == len(want_xyxy), (
        f"{where}: {len(got_xyxy)} boxes, Ultralytics {len(want_xyxy)}"
    )
    if not len(want_xyxy):
        return
    got_conf = np.asarray(detections.confidence, np.float32)
    got_cls = np.asarray(detections.class_id)
    unmatched = set(range(len(got_xyxy)))
    worst = 0.0
    for box, conf, cls in zip(want_xyxy, expected["confidence"], expected["class_id"]):
        candidates = [j for j in unmatched if got_cls[j] == cls and abs(got_conf[j] - conf) <= 2e-3]
        assert candidates, (
            f"{where}: no Coral box of class {cls} with confidence {conf:.4f} (Ultralytics {box})"
        )
        j = min(candidates, key=lambda k: float(np.abs(got_xyxy[k] - box).max()))
        worst = max(worst, float(np.abs(got_xyxy[j] - box).max()))
        unmatched.discard(j)
    assert worst <= tolerance, f"{where}: boxes differ by up to {worst:.2f} px"
