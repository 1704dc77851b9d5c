"""Media and metrics benchmarks (ratios from one run on this machine; results in BENCHMARKS.md).

1. Recorder: encode 1280×720 frames with the default settings; report the
   real-time factor for a 30 fps source (target ≥ 2×).
2. Metrics sink block: ``run`` latency with the InfluxDB server down (target p99 < 1 ms).
3. Pipeline: detection alone vs detection + recorder + metrics sink + WebRTC
   preview over the demo video (target: at most 10 % lower throughput).

Run: .venv/bin/python bench/bench_media.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("DISABLE_VERSION_CHECK", "True")


def bench_recorder(seconds: float) -> dict:
    from coral_inference.config.schema import RecordingConfig
    from coral_inference.media.recorder import RecorderOptions, SourceRecorder

    frames = int(30 * seconds)
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    images = []
    for i in range(60):
        image = background.copy()
        x = (i * 15) % 1100
        image[200:380, x : x + 180] = (40, 60, 220)
        images.append(image)
    with tempfile.TemporaryDirectory() as tmp:
        options = RecorderOptions.from_config(RecordingConfig(), queue_frames=frames + 1)
        recorder = SourceRecorder(Path(tmp) / "cam", options)
        start = time.perf_counter()
        for i in range(frames):
            recorder.submit(images[i % 60], media_time=i / 30, fps=30)
        recorder.close()
        elapsed = time.perf_counter() - start
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.mp4"))
    encode_fps = recorder.stats.frames_written / elapsed
    return {
        "frames": frames,
        "preset": options.encoder.preset,
        "encode_fps": round(encode_fps, 1),
        "realtime_factor_30fps": round(encode_fps / 30, 2),
        "bytes_per_second_of_video": int(size / seconds),
    }


def bench_metrics_block(runs: int) -> dict:
    import socket

    import coral_inference
    from coral_workflows.blocks.metrics_sink.v1 import MetricsSinkBlockV1

    with socket.socket() as s:  # a port nobody listens on: the server is down
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        context = coral_inference.init(
            {
                "storage": {"root": tmp},
                "metrics": {
                    "sinks": {
                        "influx": {
                            "type": "influxdb",
                            "url": f"http://127.0.0.1:{dead}",
                            "flush_interval_s": 0.05,
                        }
                    }
                },
            }
        )
        block = MetricsSinkBlockV1(coral_context=context)
        timings = []
        for i in range(runs):
            start = time.perf_counter()
            result = block.run(
                measurement="bench",
                fields={"count": i, "ok": True},
                tags={"site": "a"},
                image=None,
                sinks=["influx"],
                min_interval_seconds=0,
            )
            timings.append(time.perf_counter() - start)
            assert result["error_status"] is False
            if i % 100 == 0:
                time.sleep(0.001)  # let the sink thread spool, as between real frames
        stats = context.metrics.stats()
        coral_inference.shutdown()
    # The first run builds the hub (imports influxdb-client, opens the spool): not a steady-state cost.
    first_ms, timings_ms = timings[0] * 1000, np.array(timings[1:]) * 1000
    return {
        "runs": runs,
        "first_run_ms": round(first_ms, 1),
        "p50_ms": round(float(np.percentile(timings_ms, 50)), 4),
        "p99_ms": round(float(np.percentile(timings_ms, 99)), 4),
        "max_ms": round(float(timings_ms.max()), 3),
        "influx_sink": stats["influx"],
    }


def _workflow(with_media: bool) -> dict:
    steps = [
        {
            "type": "coral/object_detection_model@v1",
            "name": "detect",
            "images": "$inputs.image",
            "model": "coral-demo",
        }
    ]
    if with_media:
        steps += [
            {
                "type": "coral/video_recorder@v1",
                "name": "rec",
                "image": "$inputs.image",
                "output_directory": "bench",
            },
            {
                "type": "coral/metrics_sink@v1",
                "name": "metrics",
                "measurement": "bench",
                "image": "$inputs.image",
                "fields": {"objects": "$steps.detect.predictions"},
            },
            {
                "type": "coral/webrtc_preview@v1",
                "name": "preview",
                "image": "$inputs.image",
                "channel": "bench",
            },
        ]
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": steps,
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"}
        ],
    }


def bench_pipeline(seconds: float, rounds: int) -> dict:
    import coral_inference
    from coral_inference.demo.scenes import write_demo_video
    from coral_inference.pipelines import PipelineRunner

    os.environ["WORKFLOWS_PLUGINS"] = "coral_workflows"
    fps: dict[str, list[float]] = {"detection": [], "detection+media": []}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "demo.mp4"
        truth = write_demo_video(video, seconds=seconds, fps=15, seed=1)
        for _ in range(rounds):
            for label, with_media in (("detection", False), ("detection+media", True)):
                context = coral_inference.init(
                    {
                        "storage": {"root": tmp, "recordings": str(Path(tmp) / "rec")},
                        "metrics": {
                            "sinks": {
                                "prometheus": {"type": "prometheus"},
                                "log": {"type": "jsonl", "path": str(Path(tmp) / "m.jsonl")},
                            }
                        },
                    }
                )
                runner = PipelineRunner(
                    context, _workflow(with_media), str(video), emit_metrics=False
                )
                start = time.perf_counter()
                runner.start()
                runner.join(600)
                elapsed = time.perf_counter() - start
                assert runner.status()["frames"] == truth.frame_count, runner.status()
                fps[label].append(truth.frame_count / elapsed)
                coral_inference.shutdown()
    best = {k: max(v) for k, v in fps.items()}
    return {
        "frames": truth.frame_count,
        "rounds": rounds,
        "fps": {k: [round(x, 1) for x in v] for k, v in fps.items()},
        "best_fps": {k: round(v, 1) for k, v in best.items()},
        "throughput_ratio": round(best["detection+media"] / best["detection"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs (a smoke test, not a result)"
    )
    args = parser.parse_args()
    results = {
        "recorder_1280x720": bench_recorder(3 if args.quick else 10),
        "metrics_block_server_down": bench_metrics_block(500 if args.quick else 5000),
        "pipeline": bench_pipeline(4 if args.quick else 20, 1 if args.quick else 3),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
