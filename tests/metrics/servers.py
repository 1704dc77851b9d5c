"""Real metric servers for tests: VictoriaMetrics (InfluxDB v2 write API) and Prometheus.

Each binds 127.0.0.1 on a free port with its data in a temporary directory and
is stopped by the test that started it (``stop()`` or the context manager).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _get(url, timeout=1.0)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.1)


class _Server:
    def __init__(self, args: list[str], health_url: str, log: Path):
        self.args, self.health_url, self.log = args, health_url, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> _Server:
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log_file, stderr=subprocess.STDOUT)
        try:
            wait_http(self.health_url)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"{self.args[0]} failed to start; log:\n{self.log.read_text()[-2000:]}"
            ) from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
            self._log_file.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class VictoriaMetrics(_Server):
    def __init__(self, binary: str, data_dir: Path, port: int):
        self.url = f"http://127.0.0.1:{port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={data_dir}",
                "-retentionPeriod=100y",
            ],
            f"{self.url}/health",
            data_dir / "server.log",
        )

    def export(
        self, match: str, expect_points: int | None = None, timeout: float = 20.0
    ) -> list[dict]:
        """Stored series matching ``match`` (JSON objects: metric, values, timestamps).

        VictoriaMetrics makes accepted rows searchable a little later: with
        ``expect_points`` this polls until that many values are visible, then
        reads once more after a pause so late duplicates would show too.
        """
        deadline = time.monotonic() + timeout
        while True:
            series = self._export_once(match)
            count = sum(len(s["values"]) for s in series)
            if expect_points is None or count >= expect_points or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        if expect_points is not None:
            time.sleep(1.0)
            series = self._export_once(match)
        return series

    def _export_once(self, match: str) -> list[dict]:
        _get(f"{self.url}/internal/force_flush")
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        body = _get(f"{self.url}/api/v1/export?{query}").decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]


class Prometheus(_Server):
    def __init__(
        self,
        binary: str,
        data_dir: Path,
        port: int,
        targets: list[str],
        scrape_interval: str = "1s",
    ):
        self.url = f"http://127.0.0.1:{port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": scrape_interval,
                        "evaluation_interval": scrape_interval,
                    },
                    "scrape_configs": [
                        {"job_name": "coral", "static_configs": [{"targets": targets}]}
                    ],
                }
            )
        )
        super().__init__(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            f"{self.url}/-/ready",
            data_dir / "server.log",
        )

    def query(self, promql: str) -> list[dict]:
        body = _get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        return json.loads(body)["data"]["result"]

    def wait_for(self, promql: str, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.5)
        raise TimeoutError(f"Prometheus returned nothing for {promql!r} within {timeout}s")


def wait_until(
    condition, timeout: float = 30.0, what: str = "condition", interval: float = 0.05
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(interval)
