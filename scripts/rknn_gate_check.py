#!/usr/bin/env python
"""Convert every bundled demo model for the NPU through ``coral-runtime models convert`` with its
accuracy gate, on rknn-toolkit2's simulator, and print the reports as a Markdown table.

Optional check (it needs the toolkit environment: ``coral-runtime models toolkit install``). For
each demo package it renders seeded stills of the kind the model was trained on (detection and
segmentation scenes, pose-safe scenes, classification stills) into a folder, runs

    coral-runtime models convert PACKAGE --int8 --calibration FOLDER -o OUT/PACKAGE-int8.rknn --json

(every 5th still held out for the parity check, the rest calibrate), and when the int8 build is
refused by the gate (or cannot be built), the fp16 build the refusal suggests (``--no-int8``).
Bundled packages are never modified: the builds and their ``*.parity.json`` reports go to
``--out``.

    python scripts/rknn_gate_check.py [--stills 100] [--out DIR] [--json FILE] [PACKAGE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEMOS = {
    "coral-demo": "detect",
    "coral-demo-seg": "seg",
    "coral-demo-pose": "pose",
    "coral-demo-cls": "cls",
    "coral-demo-cls-multilabel": "cls",
}


def write_stills(kind: str, folder: Path, count: int, seed: int) -> None:
    import cv2

    from coral_inference.demo import random_still
    from coral_inference.demo.tasks import classification_still, pose_still, task_still

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        if kind == "cls":
            image = classification_still(seed + i, 480, 360).image
        elif kind == "detect":
            image = random_still(seed + i, 640, 480).image
        else:
            scene, index = (pose_still if kind == "pose" else task_still)(seed + i, 640, 480)
            image = scene.render(index).image
        cv2.imwrite(str(folder / f"still_{i:04d}.png"), image)


def convert(package: str, stills: Path, out: Path, int8: bool) -> dict[str, Any]:
    build = "int8" if int8 else "fp16"
    command = [
        sys.executable,
        "-m",
        "coral_inference.cli.main",
        "models",
        "convert",
        package,
        "--int8" if int8 else "--no-int8",
        "--calibration",
        str(stills),
        "-o",
        str(out / f"{package}-{build}.rknn"),
        "--json",
        "--no-env",
    ]
    start = time.perf_counter()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DISABLE_VERSION_CHECK": "True"},
    )
    seconds = round(time.perf_counter() - start, 1)
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = {"converted": False, "error": (done.stderr or done.stdout).strip()[-2000:]}
    answer["package_dir"] = answer.pop("package", None)
    return {"package": package, "build": build, "seconds": seconds, "rc": done.returncode, **answer}


def row(result: dict[str, Any]) -> str:
    report = result.get("report")
    if not report:
        reason = str(result.get("error", "")).splitlines()[-1:] or ["?"]
        return f"| {result['package']} | {result['build']} | - | could not run: {reason[0]} | - |"
    gated = ", ".join(
        f"{m} {report['metrics'][m]:.3f} (gate {g:g})" for m, g in report["gates"].items()
    )
    extra = ", ".join(f"{m} {v}" for m, v in report["metrics"].items() if m not in report["gates"])
    verdict = "pass" if report["passed"] else "refused"
    cos = min(report["cosine"]) if report["cosine"] else float("nan")
    return (
        f"| {result['package']} | {result['build']} | {report['frames']} | {gated}"
        f"{'; ' + extra if extra else ''}; min output cosine {cos:.3f} | {verdict} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("packages", nargs="*", default=list(DEMOS))
    parser.add_argument("--stills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/coral-rknn-gate"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for package in args.packages:
        kind = DEMOS[package]
        stills = args.out / f"stills-{kind}"
        if not stills.is_dir():
            write_stills(kind, stills, args.stills, args.seed)
        result = convert(package, stills, args.out, int8=True)
        results.append(result)
        print(row(result), flush=True)
        if not result.get("converted"):  # refused (the gate's own advice) or failed: fp16
            result = convert(package, stills, args.out, int8=False)
            results.append(result)
            print(row(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print("\n| package | build | held-out frames | metrics | gate |\n|---|---|---|---|---|")
    for result in results:
        print(row(result))


if __name__ == "__main__":
    main()
