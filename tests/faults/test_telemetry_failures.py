"""Telemetry that fails must cost requests nothing: exporter down, hanging, erroring."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from httpmgr import HttpClientManager, Settings
from httpmgr._events import ClientKind
from httpmgr.telemetry import instrument
from httpmgr.testing import HTTPSTestServer, unused_port
from tests.drivers import DRIVERS


class _BadCollector:
    """An OTLP endpoint that answers 500, or hangs without answering."""

    def __init__(self, mode: str) -> None:
        self.hits = 0
        self.release = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                collector.hits += 1
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if mode == "hang":
                    collector.release.wait(30)
                self.send_response(500)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["down", "hang", "500"])
def collector(request: pytest.FixtureRequest) -> Iterator[tuple[str, _BadCollector | None]]:
    if request.param == "down":
        yield f"http://127.0.0.1:{unused_port()}", None
        return
    bad = _BadCollector(request.param)
    yield bad.url, bad
    bad.close()


def _latencies(kind: ClientKind, manager: HttpClientManager, url: str, n: int) -> list[float]:
    driver = DRIVERS[kind](manager, url)
    out = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            assert driver.get() == "ok"
            out.append(time.perf_counter() - start)
    finally:
        driver.close()
    return out


@pytest.mark.parametrize("kind", list(DRIVERS))
def test_requests_do_not_notice_a_failing_collector(
    server: HTTPSTestServer, collector: tuple[str, _BadCollector | None], kind: ClientKind
) -> None:
    endpoint, bad = collector
    ctx = server.client_ssl_context()
    off = HttpClientManager(Settings(verify=ctx), environ={})
    on = HttpClientManager(Settings(verify=ctx), environ={})
    provider = TracerProvider()
    processor = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint + "/v1/traces", timeout=5),
        schedule_delay_millis=20,
        max_export_batch_size=8,
    )
    provider.add_span_processor(processor)
    instrument(on, tracer_provider=provider, meter_provider=MeterProvider())
    baseline = _latencies(kind, off, server.url, 60)
    failing = _latencies(kind, on, server.url, 60)
    # The exporter failed (or hung) on its own thread while the requests went on.
    if bad is not None:
        assert bad.hits >= 1
    median_off, median_on = statistics.median(baseline), statistics.median(failing)
    # Telemetry costs CPU per request (see BENCHMARKS.md), never an export's wait.
    assert median_on < 3 * median_off + 0.002, (median_off, median_on)
    assert max(failing) < 1.0
    if bad is not None:
        bad.release.set()
    provider.shutdown()


def test_prometheus_port_taken_warns_and_the_app_runs(
    server: HTTPSTestServer, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        script = tmp_path / "app.py"
        script.write_text(
            textwrap.dedent(
                f"""
                import httpmgr
                client = httpmgr.get_http_client(ca_bundle={server.ca_path!r})
                print(client.get({server.url!r}).text)
                """
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HTTPMGR_"))}
        env.update(
            HTTPMGR_TELEMETRY="1",
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="prometheus",
            OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
            OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        )
        proc = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert f"cannot serve Prometheus metrics on 127.0.0.1:{port}" in proc.stderr
    assert "RuntimeWarning" in proc.stderr
