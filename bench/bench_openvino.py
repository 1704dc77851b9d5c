#!/usr/bin/env python
"""OpenVINO (CPU, the coral-openvino pilot) against ONNX Runtime (CPU): ratios from one run.

Two models, each through Coral's own sessions (what a pipeline runs) on a preprocessed
demo-video frame:

1. the bundled demo detector ``coral-demo`` (320x320);
2. a YOLOv8n at 640x640: Ultralytics' own ``yolov8n.yaml`` with its default (random)
   initialisation, exported to ONNX by Ultralytics at bench time, in its peer
   environment (``~/.cache/coral/peers/ultralytics``, built by ``scripts/peer-env
   ultralytics``), into a temporary directory. Random weights time the same as trained
   ones: the graph and its shapes are what cost.

Measured, interleaved (A, B, A, B, ...) and summarised by the median so that load from
other processes hits every side alike:

* latency: one frame at a time, ``session.run`` — ONNX Runtime vs OpenVINO with the
  LATENCY hint;
* throughput: a batch of frames — ONNX Runtime one after the other (its session has
  concurrency 1: intra-op threads already use the cores) vs OpenVINO with the
  THROUGHPUT hint and its pool of infer requests, all in flight (``run_batch``);
* compile: OpenVINO's first compile into an empty model cache vs a start from the cache.

Usage::

    python bench/bench_openvino.py            # prints JSON and a Markdown table
    python bench/bench_openvino.py --no-yolo  # the demo detector only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PEER_PYTHON = Path.home() / ".cache" / "coral" / "peers" / "ultralytics" / "bin" / "python"
EXPORT_SCRIPT = """
import sys
from pathlib import Path
from ultralytics import YOLO
out = Path(sys.argv[1])
yolo = YOLO("yolov8n.yaml")  # architecture only: default initialisation, nothing downloaded
path = yolo.export(format="onnx", imgsz=640, simplify=False, dynamic=False, batch=1)
Path(path).replace(out)
print(out)
"""


def export_yolov8n(workdir: Path) -> Path:
    """YOLOv8n ONNX exported by Ultralytics in its peer environment (random weights)."""
    if not PEER_PYTHON.exists():
        raise SystemExit(
            f"{PEER_PYTHON} is missing: build the Ultralytics peer env (scripts/peer-env "
            "ultralytics) or pass --no-yolo"
        )
    out = workdir / "yolov8n.onnx"
    subprocess.run(
        [str(PEER_PYTHON), "-c", EXPORT_SCRIPT, str(out)],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "YOLO_OFFLINE": "1"},
    )
    return out


def yolo_package(root: Path, onnx_path: Path) -> Path:
    from coral_inference.models.package import sha256_of

    root.mkdir(parents=True, exist_ok=True)
    target = root / "model.onnx"
    onnx_path.replace(target)
    manifest = {
        "name": "yolov8n-random",
        "classes": [f"class{i}" for i in range(80)],
        "input": {"width": 640, "height": 640},
        "head": {"type": "yolov8"},
        "artifacts": {"onnxruntime": {"file": "model.onnx", "sha256": sha256_of(target)}},
        "metadata": {"source": "Ultralytics yolov8n.yaml, default init, exported at bench time"},
    }
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


def interleaved(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of each side's measurement, sides taking turns every round."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, measure in sides.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Seconds per call over ``repeat`` calls."""
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def bench_model(
    package_ref: str | Path, frame: np.ndarray, batch: int, rounds: int
) -> dict[str, Any]:
    from coral_openvino import OpenVinoBackend

    from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
    from coral_inference.models import load_package
    from coral_inference.models.detector import Detector

    package = load_package(package_ref)
    ort = OnnxRuntimeBackend().prepare_session(package)
    tensor = OnnxRuntimeBackend().preprocess(frame, package)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        ov_latency = OpenVinoBackend(
            {"performance_hint": "LATENCY", "cache_dir": cache}
        ).prepare_session(package)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        again = OpenVinoBackend(
            {"performance_hint": "LATENCY", "cache_dir": cache}
        ).prepare_session(package)
        cached = time.perf_counter() - start
        again.close()
    ov_throughput = OpenVinoBackend(
        {"performance_hint": "THROUGHPUT", "cache": False}
    ).prepare_session(package)
    # Same boxes first: a fast wrong answer is no answer.
    a = Detector(package, ort).detect(frame, confidence=0.25)
    b = Detector(package, ov_latency).detect(frame, confidence=0.25)
    box_diff = (
        float(np.abs(np.sort(a.xyxy, axis=0) - np.sort(b.xyxy, axis=0)).max())
        if len(a) == len(b) and len(a)
        else None
    )
    # Raw outputs too (random weights may leave no box above the threshold).
    raw_ort, raw_ov = ort.run(tensor)[0], ov_latency.run(tensor)[0]
    raw_diff = float(np.abs(raw_ort - raw_ov).max() / max(1e-9, float(np.abs(raw_ort).max())))

    tensors = [tensor.copy() for _ in range(batch)]
    for session in (ort, ov_latency, ov_throughput):
        for _ in range(3):
            session.run(tensor)
    latency = interleaved(
        {
            "onnxruntime": lambda: timed(lambda: ort.run(tensor), 5),
            "openvino": lambda: timed(lambda: ov_latency.run(tensor), 5),
        },
        rounds,
    )
    throughput = interleaved(
        {
            "onnxruntime": lambda: batch / timed(lambda: [ort.run(t) for t in tensors], 1),
            "openvino": lambda: batch / timed(lambda: ov_throughput.run_batch(tensors), 1),
        },
        rounds,
    )
    result = {
        "model": package.name,
        "input": f"{package.input.width}x{package.input.height}",
        "detections_onnxruntime": len(a),
        "detections_openvino": len(b),
        "max_box_difference_px": box_diff,
        "max_raw_output_difference_relative": raw_diff,
        "latency_ms": {k: v * 1000 for k, v in latency.items()},
        "latency_ratio_ort_over_ov": latency["onnxruntime"] / latency["openvino"],
        "throughput_fps": throughput,
        "throughput_ratio_ov_over_ort": throughput["openvino"] / throughput["onnxruntime"],
        "openvino_infer_requests": ov_throughput.concurrency,
        "openvino_streams": ov_throughput.describe().get("streams"),
        "compile_s": {"cold": cold, "from_cache": cached},
    }
    for session in (ort, ov_latency, ov_throughput):
        session.close()
    return result


def markdown(results: list[dict[str, Any]], env: dict[str, Any]) -> str:
    lines = [
        f"Machine: {env['cpu']} ({env['cores']} cores), Python {env['python']}, "
        f"onnxruntime {env['onnxruntime']}, openvino {env['openvino']}.",
        "",
        "| model | input | ORT latency ms | OV latency ms | ORT/OV | ORT fps (batch) | "
        "OV fps (batch, async) | OV/ORT | OV compile cold / cached s | difference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat, fps, comp = r["latency_ms"], r["throughput_fps"], r["compile_s"]
        boxes = r["max_box_difference_px"]
        diff = f"boxes {'n/a' if boxes is None else f'{boxes:.3f} px'}, "
        diff += f"raw {r['max_raw_output_difference_relative']:.1e}"
        lines.append(
            f"| {r['model']} | {r['input']} | {lat['onnxruntime']:.2f} | {lat['openvino']:.2f} | "
            f"{r['latency_ratio_ort_over_ov']:.2f} | {fps['onnxruntime']:.1f} | "
            f"{fps['openvino']:.1f} "
            f"({r['openvino_infer_requests']} requests, {r['openvino_streams']} streams) | "
            f"{r['throughput_ratio_ov_over_ort']:.2f} | "
            f"{comp['cold']:.2f} / {comp['from_cache']:.2f} | {diff} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-yolo", action="store_true", help="skip the YOLOv8n export and run")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    import onnxruntime
    import openvino

    from coral_inference.demo import traffic_scene

    frame = traffic_scene(7, 640, 480, frame_count=30).render(10).image
    env = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "openvino": openvino.__version__.split("-")[0],
    }
    try:
        with open("/proc/cpuinfo") as info:
            env["cpu"] = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    results = [bench_model("coral-demo", frame, args.batch, args.rounds)]
    if not args.no_yolo:
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_yolov8n(Path(tmp))
            root = yolo_package(Path(tmp) / "yolov8n", onnx_path)
            results.append(bench_model(root, frame, args.batch, max(5, args.rounds // 3)))
    print(json.dumps({"environment": env, "results": results}, indent=1))
    print()
    print(markdown(results, env))


if __name__ == "__main__":
    main()
