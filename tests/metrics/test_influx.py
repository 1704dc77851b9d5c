"""InfluxDB sink: batching, retry, disk spool (outage, restart, bound), against a fake and VictoriaMetrics."""

from __future__ import annotations

import threading
import time

import pytest

from coral_inference.config.schema import InfluxSinkConfig
from coral_inference.metrics import MetricsHub
from coral_inference.metrics.hub import validate_point
from coral_inference.metrics.influx import InfluxSink, RejectedBatchError, to_line_protocol

from .servers import VictoriaMetrics, wait_until


def cfg(url: str = "http://127.0.0.1:1", **kw) -> InfluxSinkConfig:
    base = dict(
        url=url,
        batch_size=10,
        flush_interval_s=0.05,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        timeout_s=2,
    )
    return InfluxSinkConfig(**{**base, **kw})


class FlakyServer:
    """Refuses writes while ``down``; records every accepted line."""

    def __init__(self, down: bool = True):
        self.down = down
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def write(self, lines: list[str]) -> None:
        if self.down:
            raise ConnectionRefusedError("server down")
        with self.lock:
            self.lines.extend(lines)


def values_written(lines: list[str]) -> list[int]:
    return [int(float(line.split(" ")[1].split("=")[1])) for line in lines]


def test_line_protocol_escapes_names_and_keeps_nanoseconds():
    point = validate_point("people count", {"in zone": 3}, {"site": "a,b"}, time_ns=123)
    assert to_line_protocol(point) == r"people\ count,site=a\,b in\ zone=3.0 123"


def test_outage_spools_and_replays_in_order_without_duplicates(tmp_path):
    server = FlakyServer(down=True)
    sink = InfluxSink("influx", cfg(), spool_dir=tmp_path / "spool", write=server.write)
    for i in range(95):
        sink.offer(validate_point("m", {"v": i}))
    wait_until(lambda: sink.stats.spooled == 95, what="all points spooled while down")
    assert len(sink.spool) >= 1 and not sink.online
    server.down = False
    for i in range(95, 100):
        sink.offer(validate_point("m", {"v": i}))
    wait_until(lambda: len(server.lines) == 100, what="replay after the server came back")
    sink.close()
    assert values_written(server.lines) == list(range(100))
    assert sink.stats.spooled == 0 and sink.stats.dropped == 0 and len(sink.spool) == 0


def test_restart_replays_a_non_empty_spool(tmp_path):
    down = FlakyServer(down=True)
    first = InfluxSink("influx", cfg(), spool_dir=tmp_path / "spool", write=down.write)
    for i in range(30):
        first.offer(validate_point("m", {"v": i}))
    first.close()  # the process ends while the server is down
    assert first.spool.lines == 30

    up = FlakyServer(down=False)
    second = InfluxSink("influx", cfg(), spool_dir=tmp_path / "spool", write=up.write)
    assert second.stats.spooled == 30
    second.offer(validate_point("m", {"v": 30}))
    wait_until(lambda: len(up.lines) == 31, what="spool of the previous run replayed")
    second.close()
    assert values_written(up.lines) == list(range(31))


def test_spool_is_bounded_and_counts_what_it_drops(tmp_path):
    server = FlakyServer(down=True)
    sink = InfluxSink(
        "influx", cfg(max_spool_bytes=2000), spool_dir=tmp_path / "spool", write=server.write
    )
    for i in range(500):
        sink.offer(validate_point("m", {"v": i}))
    wait_until(
        lambda: sink.stats.spooled + sink.stats.dropped == 500, what="points spooled or dropped"
    )
    sink.close()
    assert sink.stats.dropped > 0
    assert sink.spool.size_bytes <= 2000 + 1000  # the newest batch always stays


def test_rejected_batch_is_dropped_not_retried(tmp_path):
    calls = []

    def write(lines):
        calls.append(lines)
        raise RejectedBatchError("HTTP 400: bad line")

    sink = InfluxSink("influx", cfg(), spool_dir=tmp_path / "spool", write=write)
    for i in range(5):
        sink.offer(validate_point("m", {"v": i}))
    wait_until(lambda: sink.stats.dropped == 5, what="rejected points counted")
    sink.close()
    assert len(calls) == 1 and len(sink.spool) == 0 and "HTTP 400" in sink.stats.last_error


@pytest.mark.server
@pytest.mark.slow
def test_victoriametrics_down_for_the_whole_run_then_up_gets_every_point_once(
    tmp_path, require_tool, port
):
    vm = VictoriaMetrics(require_tool("victoria-metrics"), tmp_path / "vm", port)
    hub = MetricsHub(
        {"influx": InfluxSink("influx", cfg(url=vm.url), spool_dir=tmp_path / "spool")}
    )
    t0 = time.time_ns()
    for i in range(200):
        hub.emit("coral_test", {"value": i}, {"run": "outage"}, time_ns=t0 + i * 1_000_000)
    sink = hub.sink("influx")
    wait_until(
        lambda: sink.stats.spooled == 200, what="points spooled while VictoriaMetrics is down"
    )
    with vm:
        wait_until(lambda: sink.stats.sent == 200, timeout=60, what="replay into VictoriaMetrics")
        hub.close()
        series = vm.export('{__name__="coral_test_value"}', expect_points=200)
    assert len(series) == 1 and series[0]["metric"]["run"] == "outage"
    assert series[0]["values"] == list(range(200))  # every point, in order, none twice
    assert len(set(series[0]["timestamps"])) == 200


@pytest.mark.server
@pytest.mark.slow
def test_victoriametrics_receives_a_spool_left_by_a_previous_process(tmp_path, require_tool, port):
    vm = VictoriaMetrics(require_tool("victoria-metrics"), tmp_path / "vm", port)
    spool = tmp_path / "spool"
    first = InfluxSink("influx", cfg(url=vm.url), spool_dir=spool)
    t0 = time.time_ns()
    for i in range(50):
        first.offer(validate_point("coral_restart", {"value": i}, time_ns=t0 + i * 1_000_000))
    first.close()
    assert first.spool.lines == 50
    with vm:
        second = InfluxSink("influx", cfg(url=vm.url), spool_dir=spool)
        wait_until(lambda: second.stats.sent == 50, timeout=60, what="spool replayed after restart")
        second.close()
        series = vm.export('{__name__="coral_restart_value"}', expect_points=50)
    assert series[0]["values"] == list(range(50))
