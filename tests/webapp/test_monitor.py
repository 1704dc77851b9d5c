"""MonitorService: accelerator load from /sys, history, cleanup under quota."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from coral_inference.runtime import init
from coral_inference.webapp.services import monitor as monitor_module
from coral_inference.webapp.services.monitor import MonitorService, read_npu_load
from tests.support import wait_until


def write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_rk3588_npu_load_is_read_per_core(tmp_path):
    write(
        tmp_path, "sys/kernel/debug/rknpu/load", "NPU load:  Core0: 12%, Core1:  0%, Core2: 47%,\n"
    )
    assert read_npu_load(tmp_path) == {"npu_core0": 12.0, "npu_core1": 0.0, "npu_core2": 47.0}


def test_devfreq_and_jetson_loads_and_nothing_readable(tmp_path):
    assert read_npu_load(tmp_path) == {}
    write(tmp_path, "sys/devices/gpu.0/load", "537\n")
    assert read_npu_load(tmp_path) == {"gpu": 53.7}
    write(tmp_path, "sys/class/devfreq/fdab0000.npu/load", "35@1000000000Hz\n")
    assert read_npu_load(tmp_path) == {"npu": 35.0}


class Sink:
    def __init__(self):
        self.points = []

    def emit(self, measurement, fields, tags, sinks):
        self.points.append((measurement, fields, sinks))


@pytest.fixture
def monitor(tmp_path):
    context = init(
        {
            "storage": {
                "root": str(tmp_path),
                "recordings": str(tmp_path / "rec"),
                "results": str(tmp_path / "res"),
            },
            "services": {"monitoring": {"disk_quota_bytes": 3000, "min_free_bytes": 0}},
            # one background pass (at registration), none during a test
            "recording": {"retention": {"interval_s": 3600}},
            "plugins": {"entry_points": False},
        }
    )
    statuses = [
        {
            "id": "p1",
            "state": "running",
            "fps": 9.5,
            "inference_latency_ms": 12.0,
            "detections": 2,
            "frames": 10,
        }
    ]
    return MonitorService(
        context, lambda: statuses, metrics_hub=Sink(), sys_root=tmp_path
    ), statuses


def test_a_sample_feeds_history_and_the_host_sink(monitor):
    service, statuses = monitor
    service.sample()
    assert service.history("p1")["samples"][-1]["fps"] == 9.5
    measurement, fields, sinks = service.metrics_hub.points[-1]
    assert (
        measurement == "coral_host"
        and sinks == ["prometheus"]
        and 0 <= fields["cpu_percent"] <= 100
    )
    statuses.clear()
    service.sample()
    assert "p1" not in service.history()["pipelines"]  # forgotten once the pipeline is gone
    assert len(service.history()["host"]) == 2


def registered_and_first_pass_done(service: MonitorService) -> None:
    """Register the quota; the retention thread's first pass (on the empty tree) is over.

    Otherwise that pass races the test's own ``cleanup`` for the same files.
    """
    owner = service.retention
    wait_until(lambda: monitor_module.QUOTA_NAME in owner.last_quota_reports)
    assert owner.last_quota_reports[monitor_module.QUOTA_NAME].deleted == []


def test_cleanup_deletes_oldest_first_down_to_the_quota_and_spares_fresh_files(monitor, tmp_path):
    service, _ = monitor
    registered_and_first_pass_done(service)
    now = time.time()
    for i, (folder, name) in enumerate(
        [("rec/cam", "a.mp4"), ("res", "b.json"), ("rec/cam", "c.mp4"), ("rec/cam", "d.mp4")]
    ):
        path = tmp_path / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
        age = 3600 - i * 600 if name != "d.mp4" else 1  # d.mp4 is still being written
        os.utime(path, (now - age, now - age))
    report = service.cleanup(now=now)
    assert sorted(os.path.basename(p) for p in report["deleted"]) == ["a.mp4"]
    assert report["remaining_bytes"] == 3000
    assert (tmp_path / "rec/cam/d.mp4").exists() and (tmp_path / "res/b.json").exists()


def test_the_monitor_reports_and_the_retention_owner_deletes(monitor, tmp_path):
    service, _ = monitor
    assert service.disk_report() is None  # nothing enforced yet
    registered_and_first_pass_done(service)
    old = tmp_path / "rec" / "cam" / "old.mp4"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x" * 4000)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    report = service.cleanup()
    owner = service.retention
    assert owner is service.context.recordings.retention
    assert owner.last_quota_reports["monitoring.disk_quota"].deleted == [old]
    assert report["deleted"] == [str(old)] and service.disk_report()["deleted"] == [str(old)]
    source = Path(monitor_module.__file__).read_text()
    assert "unlink" not in source and "delete_files" not in source  # one deleter per tree
