"""Real Prometheus and real Jaeger v2 on 127.0.0.1, started for the tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from httpmgr.testing import unused_port

REPO = Path(__file__).resolve().parents[2]
JAEGER_BIN = REPO / ".cache" / "jaeger" / "jaeger"


def http_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last!r})")


class Prometheus:
    """``prometheus`` (Debian package) scraping ``targets`` every second, with our rules."""

    def __init__(self, targets: list[str], rules: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: run `make test` (it installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix="httpmgr-prom-"))
        shutil.copy(rules, self.dir / "alerts.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": targets}]}],
        }
        (self.dir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.dir / "prometheus.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_until(lambda: urllib.request.urlopen(self.url + "/-/ready").status == 200, 30,
                   "prometheus")  # fmt: skip

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")
        if body["status"] != "success":
            raise AssertionError(f"{expr}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def close(self) -> None:
        _stop(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Jaeger:
    """Jaeger v2 built from the Go module proxy (``make jaeger``), on loopback ports."""

    def __init__(self) -> None:
        if not JAEGER_BIN.exists():
            raise RuntimeError(f"{JAEGER_BIN} missing: run `make jaeger` (make test does)")
        ports = {
            name: unused_port()
            for name in ("QUERY", "QUERY_GRPC", "OTLP_HTTP", "OTLP_GRPC", "HEALTH")
        }
        env = {**os.environ, **{f"JAEGER_{k}_PORT": str(v) for k, v in ports.items()}}
        env["JAEGER_LISTEN_HOST"] = "127.0.0.1"
        self.query_url = f"http://127.0.0.1:{ports['QUERY']}"
        self.otlp_url = f"http://127.0.0.1:{ports['OTLP_HTTP']}"
        self.log = tempfile.NamedTemporaryFile(prefix="httpmgr-jaeger-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(JAEGER_BIN), "--config", str(REPO / "telemetry" / "jaeger" / "config.yaml")],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: http_json(self.query_url + "/api/services") is not None, 60, "jaeger")

    def traces(self, service: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"service": service, "limit": 500, "lookback": "1h"})
        data: list[dict[str, Any]] = http_json(f"{self.query_url}/api/traces?{query}")["data"]
        return data

    def close(self) -> None:
        _stop(self.proc)
        self.log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
