#!/usr/bin/env python
"""Build the demo detector with rknn-toolkit2's simulator and compare it with ONNX Runtime.

Optional check, not part of the default test run (it needs a multi-GB toolkit
environment). Two processes, because rknn-toolkit2 pins old numpy/torch/onnx:

* this script, in Coral's environment, renders seeded demo stills, prepares them
  with Coral's own preprocessing (letterbox -> NHWC uint8 RGB for the NPU, NCHW
  float32 for ONNX Runtime) and, at the end, decodes both sets of raw outputs with
  Coral's decoders and compares tensors, detections and mAP against ground truth;
* ``--worker`` runs in the toolkit environment (``scripts/rknn-toolkit-env``):
  ``config -> load_onnx -> build -> init_runtime()`` (the x86 simulator) ``-> inference``
  for the fp16 build and, with ``--int8``, an int8 build calibrated on other stills.

    python scripts/rknn_simulator_check.py [--package coral-demo] [--frames 20] [--int8] [--json OUT]
    python scripts/rknn_simulator_check.py --fixture segment|pose|obb|classify

``--fixture TASK`` checks a task head instead: the Ultralytics peer fixture model of that
task (tests/fixtures/peers/ultralytics; seg and pose in the rknn_model_zoo split layout an
NPU build uses) is built, and Coral's task results from the simulator's outputs are
compared with those from ONNX Runtime's (instances matched by box, mask IoU, keypoint
distance, OBB corners, classification top-5); random weights have no ground truth.

Prints a Markdown summary (paste it into docs/hardware.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- worker (toolkit env)


def worker(args: argparse.Namespace) -> None:
    from rknn.api import RKNN

    spec = json.loads(Path(args.spec).read_text())
    frames = np.load(spec["frames"])["nhwc"]
    results = {}
    for build in spec["builds"]:
        rknn = RKNN(verbose=False)
        steps = [
            (
                "config",
                lambda: rknn.config(
                    mean_values=spec["mean_values"],
                    std_values=spec["std_values"],
                    target_platform=spec["target_platform"],
                ),
            ),
            ("load_onnx", lambda: rknn.load_onnx(model=spec["onnx"])),
            (
                "build",
                lambda: rknn.build(
                    do_quantization=build == "int8",
                    dataset=spec["dataset"] if build == "int8" else None,
                ),
            ),
            ("init_runtime", lambda: rknn.init_runtime()),
        ]
        started = time.time()
        for name, step in steps:
            ret = step()
            if ret != 0:
                raise SystemExit(f"rknn-toolkit2 {name} returned {ret} for the {build} build")
        built = time.time() - started
        outputs = []
        for frame in frames:
            out = rknn.inference(inputs=[frame[None]], data_format=["nhwc"])
            if out is None:
                raise SystemExit(f"simulator inference returned None ({build} build)")
            outputs.append([np.asarray(o, np.float32) for o in out])
        rknn.release()
        count = len(outputs[0])
        np.savez(
            Path(spec["out_dir"]) / f"{build}.npz",
            **{f"f{i}_o{j}": outputs[i][j] for i in range(len(outputs)) for j in range(count)},
        )
        results[build] = {"outputs": count, "build_seconds": round(built, 1)}
    from importlib.metadata import version

    results["toolkit"] = version("rknn-toolkit2")
    Path(spec["out_dir"], "worker.json").write_text(json.dumps(results))


# --------------------------------------------------------------------------- driver (Coral env)


def driver(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(REPO))
    import cv2

    from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
    from coral_inference.demo import random_still
    from coral_inference.demo.evaluation import Prediction, Truth, mean_average_precision
    from coral_inference.models import load_package
    from coral_inference.models.convert import normalisation_for_rknn, plan_rknn_build
    from coral_inference.models.decoders import decode
    from coral_inference.models.nms import nms
    from coral_inference.models.package import InputOverride
    from coral_inference.models.preprocess import preprocess_image

    fixture_dir = None
    if args.fixture:
        from tests.models.peer_support import write_task_package

        fixture_dir = tempfile.TemporaryDirectory()
        variant = "split" if args.fixture in ("segment", "pose") else "model"
        package = load_package(
            write_task_package(Path(fixture_dir.name) / args.fixture, args.fixture, variant)
        )
    else:
        package = load_package(args.package)
    plan = plan_rknn_build(package, target_platform=args.target)
    head, classes = plan.head, len(package.classes)
    npu_spec = package.input.model_copy(
        update=InputOverride(layout="NHWC", dtype="uint8").model_dump(exclude_none=True)
    )
    env = Path(
        subprocess.run(
            ["bash", str(REPO / "scripts/rknn-toolkit-env")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    stills = [random_still(args.seed + i, 640, 480) for i in range(args.frames)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nhwc, nchw, geometries = [], [], []
        for still in stills:
            tensor, geometry = preprocess_image(still.image, npu_spec)
            nhwc.append(tensor[0])
            nchw.append(preprocess_image(still.image, package.input)[0])
            geometries.append(geometry)
        np.savez(tmp / "frames.npz", nhwc=np.stack(nhwc))
        calibration = []
        for i in range(args.calibration):
            path = tmp / f"calib_{i}.png"
            cv2.imwrite(
                str(path),
                cv2.cvtColor(
                    preprocess_image(
                        random_still(args.seed + 10_000 + i, 640, 480).image, npu_spec
                    )[0][0],
                    cv2.COLOR_RGB2BGR,
                ),
            )
            calibration.append(str(path))
        (tmp / "dataset.txt").write_text("\n".join(calibration) + "\n")
        mean, std = normalisation_for_rknn(package.input)
        spec = {
            "onnx": str(plan.onnx),
            "mean_values": mean,
            "std_values": std,
            "target_platform": plan.target_platform,
            "frames": str(tmp / "frames.npz"),
            "dataset": str(tmp / "dataset.txt"),
            "out_dir": str(tmp),
            "builds": ["fp16"] + (["int8"] if args.int8 else []),
        }
        (tmp / "spec.json").write_text(json.dumps(spec))
        subprocess.run(
            [str(env / "bin/python"), __file__, "--worker", "--spec", str(tmp / "spec.json")],
            check=True,
        )
        worker_info = json.loads((tmp / "worker.json").read_text())
        simulated = {b: np.load(tmp / f"{b}.npz") for b in spec["builds"]}
        session = OnnxRuntimeBackend().open_session(plan.onnx, model=package.name)
        reference = [session.run(x) for x in nchw]

        def detections(outputs, geometry):
            c = decode(outputs, head, classes, confidence=0.4)
            keep = nms(c.xyxy, c.scores, 0.45, c.class_ids)
            return Prediction(geometry.to_source(c.xyxy[keep]), c.scores[keep], c.class_ids[keep])

        if package.manifest.task != "object-detection":
            report = task_agreement(
                package, plan, session, reference, simulated, worker_info, geometries, args
            )
            report.update(
                package=package.name,
                onnx=plan.onnx.name,
                head=head.type,
                frames=len(stills),
                target_platform=plan.target_platform,
            )
            return report
        truths = [Truth(s.xyxy, s.class_ids) for s in stills]
        ort_predictions = [detections(out, g) for out, g in zip(reference, geometries)]
        report = {
            "package": package.name,
            "onnx": plan.onnx.name,
            "head": head.type,
            "frames": len(stills),
            "toolkit": worker_info.pop("toolkit"),
            "target_platform": plan.target_platform,
            "onnxruntime_map50": mean_average_precision(ort_predictions, truths, classes)["map"],
            "builds": {},
        }
        for build, data in simulated.items():
            count = worker_info[build]["outputs"]
            outputs = [[data[f"f{i}_o{j}"] for j in range(count)] for i in range(len(stills))]
            diffs, cosines = [], []
            for sim, ref in zip(outputs, reference):  # per frame, all output tensors together
                s = np.concatenate([o.reshape(-1) for o in sim]).astype(np.float64)
                r = np.concatenate([o.reshape(-1) for o in ref]).astype(np.float64)
                diffs.append(float(np.abs(s - r).max()))
                cosines.append(float(s @ r / (np.linalg.norm(s) * np.linalg.norm(r) + 1e-12)))
            predictions = [
                detections([o.reshape(r.shape) for o, r in zip(sim, ref)], g)
                for sim, ref, g in zip(outputs, reference, geometries)
            ]
            report["builds"][build] = {
                "build_seconds": worker_info[build]["build_seconds"],
                "max_abs_diff": max(diffs),
                "min_cosine": min(cosines),
                "map50": mean_average_precision(predictions, truths, classes)["map"],
                "detections": int(sum(len(p.scores) for p in predictions)),
                "onnxruntime_detections": int(sum(len(p.scores) for p in ort_predictions)),
            }
    return report


def task_agreement(
    package, plan, session, reference, simulated, worker_info, geometries, args
) -> dict:
    """Coral's task results from the simulator's outputs vs from ONNX Runtime's, frame by frame."""
    from coral_inference.models.detector import Detector
    from coral_inference.models.tasks.postprocess import classify_outputs
    from tests.models.peer_support import meta

    settings = meta(args.fixture)["settings"]
    detector = Detector(package, session, input_spec=package.input, head=plan.head)
    report: dict = {
        "toolkit": worker_info.pop("toolkit"),
        "task": package.manifest.task,
        "builds": {},
    }
    for build, data in simulated.items():
        count = worker_info[build]["outputs"]
        rows = {
            "instances_ort": 0,
            "instances_sim": 0,
            "matched": 0,
            "box_diff_px": 0.0,
            "mask_iou_min": 1.0,
            "keypoint_diff_px": 0.0,
            "corner_diff_px": 0.0,
            "top5_equal": 0,
            "cosines": [],
        }
        for i, (ref, geometry) in enumerate(zip(reference, geometries)):
            sim = [data[f"f{i}_o{j}"].reshape(r.shape) for j, r in zip(range(count), ref)]
            s = np.concatenate([o.reshape(-1) for o in sim]).astype(np.float64)
            r = np.concatenate([o.reshape(-1) for o in ref]).astype(np.float64)
            rows["cosines"].append(float(s @ r / (np.linalg.norm(s) * np.linalg.norm(r) + 1e-12)))
            if plan.head.type == "yolov8_cls":
                a = classify_outputs(package, plan.head, package.input, ref)
                b = classify_outputs(package, plan.head, package.input, sim)
                rows["top5_equal"] += int(a.top_ids(5).tolist() == b.top_ids(5).tolist())
                continue
            a = detector.postprocess(
                ref, geometry, confidence=settings["conf"], iou=settings["iou"]
            )
            b = detector.postprocess(
                sim, geometry, confidence=settings["conf"], iou=settings["iou"]
            )
            rows["instances_ort"] += len(a)
            rows["instances_sim"] += len(b)
            if not len(a) or not len(b):
                continue
            # Each ONNX Runtime instance's nearest simulator instance; within 2 px counts as the same
            # one (random weights leave near-tied scores that fp16 can reorder around the threshold).
            distance = np.abs(b.xyxy[None] - a.xyxy[:, None]).max(axis=2)
            order = distance.argmin(axis=1)
            same = distance[np.arange(len(a)), order] <= 2.0
            rows["matched"] += int(same.sum())
            a, order = a[same], order[same]
            if not len(a):
                continue
            rows["box_diff_px"] = max(
                rows["box_diff_px"], float(np.abs(b.xyxy[order] - a.xyxy).max())
            )
            if a.mask is not None:
                inter = (a.mask & b.mask[order]).sum(axis=(1, 2))
                union = np.maximum((a.mask | b.mask[order]).sum(axis=(1, 2)), 1)
                rows["mask_iou_min"] = min(rows["mask_iou_min"], float((inter / union).min()))
            if "keypoints_xy" in a.data:
                diff = np.abs(b.data["keypoints_xy"][order] - a.data["keypoints_xy"]).max()
                rows["keypoint_diff_px"] = max(rows["keypoint_diff_px"], float(diff))
            if "xyxyxyxy" in a.data:
                diff = np.abs(b.data["xyxyxyxy"][order] - a.data["xyxyxyxy"]).max()
                rows["corner_diff_px"] = max(rows["corner_diff_px"], float(diff))
        rows["min_cosine"] = min(rows.pop("cosines"))
        rows["build_seconds"] = worker_info[build]["build_seconds"]
        report["builds"][build] = rows
    return report


def markdown(report: dict) -> str:
    if "task" in report:
        lines = [
            f"rknn-toolkit2 {report['toolkit']} simulator, target {report['target_platform']}, "
            f"{report['package']} ({report['onnx']}, head {report['head']}, task {report['task']}), "
            f"{report['frames']} seeded stills; Coral's results from the simulator vs from ONNX Runtime.",
            "",
            "| build | min cosine | instances sim (ORT) | ORT instances matched by the sim (<= 2 px) "
            "| max box diff px | min mask IoU | max keypoint diff px | max corner diff px "
            "| top-5 equal frames | build s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for build, r in report["builds"].items():
            lines.append(
                f"| {build} | {r['min_cosine']:.5f} | {r['instances_sim']} ({r['instances_ort']}) "
                f"| {r['matched']}/{r['instances_ort']} "
                f"| {r['box_diff_px']:.2f} | {r['mask_iou_min']:.3f} | {r['keypoint_diff_px']:.2f} "
                f"| {r['corner_diff_px']:.2f} | {r['top5_equal']} | {r['build_seconds']} |"
            )
        return "\n".join(lines)
    lines = [
        f"rknn-toolkit2 {report['toolkit']} simulator, target {report['target_platform']}, "
        f"{report['package']} ({report['onnx']}, head {report['head']}), {report['frames']} seeded stills; "
        f"ONNX Runtime mAP@0.5 {report['onnxruntime_map50']:.3f}.",
        "",
        "| build | max abs diff vs ONNX Runtime | min cosine | mAP@0.5 | detections (ORT) | build s |",
        "|---|---|---|---|---|---|",
    ]
    for build, r in report["builds"].items():
        lines.append(
            f"| {build} | {r['max_abs_diff']:.4f} | {r['min_cosine']:.5f} | {r['map50']:.3f} "
            f"| {r['detections']} ({r['onnxruntime_detections']}) | {r['build_seconds']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--package", default="coral-demo")
    parser.add_argument(
        "--target", default=None, help="SoC (default: the package's convert.rknn.target_platform)"
    )
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument(
        "--calibration", type=int, default=50, help="Calibration stills for --int8."
    )
    parser.add_argument("--seed", type=int, default=31_000)
    parser.add_argument("--int8", action="store_true", help="Also build and check an int8 model.")
    parser.add_argument("--json", type=Path, help="Write the report here too.")
    parser.add_argument(
        "--fixture",
        choices=["segment", "pose", "obb", "classify"],
        help="Check a task head on the Ultralytics peer fixture model instead of --package.",
    )
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    report = driver(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(markdown(report))


if __name__ == "__main__":
    main()
