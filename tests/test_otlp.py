"""Real OTLP/HTTP export, the HTTPMGR_TELEMETRY=1 path, and telemetry that fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from httpmgr import HttpClientManager, SettingsError
from httpmgr import _names as n
from httpmgr.telemetry import configure_from_env, instrument
from httpmgr.testing import HTTPSTestServer, unused_port

from .drivers import Driver
from .otlp_receiver import OTLPReceiver, attributes

SECRET = "SUPERSECRET-4f9c2"


def test_otlp_round_trip(
    driver: Driver, manager: HttpClientManager, server: HTTPSTestServer, otlp: OTLPReceiver
) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "roundtrip"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp.url + "/v1/traces"))
    )
    instrument(manager, tracer_provider=provider, meter_provider=MeterProvider())
    driver.get(f"/quote?symbol=BTC&api_key={SECRET}&signature={SECRET}")
    driver.get(f"/quote?symbol=ETH&api_key={SECRET}&signature={SECRET}")
    provider.force_flush()
    provider.shutdown()

    spans = otlp.spans()
    assert {res["service.name"] for res, _ in spans} == {"roundtrip"}
    clients = [s for _, s in spans if s.kind == PbSpan.SPAN_KIND_CLIENT]
    first, second = sorted(clients, key=lambda s: s.start_time_unix_nano)
    a1, a2 = attributes(first.attributes), attributes(second.attributes)
    assert (a1[n.CONNECTION_REUSED], a2[n.CONNECTION_REUSED]) == (False, True)
    assert a1[n.CONNECTION_ID] == a2[n.CONNECTION_ID]
    assert a1[n.URL_FULL].endswith("/quote?symbol=BTC&api_key=REDACTED&signature=REDACTED")
    internal = {s.name: s for _, s in spans if s.kind == PbSpan.SPAN_KIND_INTERNAL}
    setup = internal[f"{n.SPAN_CONNECTION_SETUP} 127.0.0.1:{server.port}"]
    assert setup.parent_span_id == first.span_id
    assert setup.trace_id == first.trace_id
    assert internal[n.SPAN_SOCKET_CONNECT].parent_span_id == setup.span_id
    # the secret is nowhere in what was sent, in any encoding
    for body in otlp.raw["/v1/traces"]:
        assert SECRET.encode() not in body


def _app(server: HTTPSTestServer, tmp_path: Path, extra: str = "") -> Path:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            import httpmgr

            URL, CA = {server.url!r} + "/?token={SECRET}", {server.ca_path!r}
            {extra}

            async def main():
                c = await httpmgr.get_async_http_client(ca_bundle=CA)
                s = await httpmgr.get_aiohttp_session(ca_bundle=CA)
                for _ in range(3):
                    (await c.get(URL)).raise_for_status()
                    async with s.get(URL) as r:
                        r.raise_for_status()

            client = httpmgr.get_http_client(ca_bundle=CA)
            for _ in range(3):
                client.get(URL).raise_for_status()
            asyncio.run(main())
            print("requests ok", file=sys.stderr)
            """
        )
    )
    return script


def _run(script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HTTPMGR_"))}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_env_var_switches_telemetry_on_with_otlp(
    server: HTTPSTestServer, otlp: OTLPReceiver, tmp_path: Path
) -> None:
    proc = _run(
        _app(server, tmp_path),
        HTTPMGR_TELEMETRY="1",
        OTEL_SERVICE_NAME="trading-bot",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url,
    )
    assert proc.returncode == 0, proc.stderr
    assert "requests ok" in proc.stderr
    spans = otlp.spans()
    assert {res["service.name"] for res, _ in spans} == {"trading-bot"}
    clients = [attributes(s.attributes) for _, s in spans if s.kind == PbSpan.SPAN_KIND_CLIENT]
    assert len(clients) == 9
    assert sorted(a[n.CONNECTION_REUSED] for a in clients) == [False] * 3 + [True] * 6
    assert n.REQUESTS in otlp.metric_names()
    assert n.CONNECTIONS_OPENED in otlp.metric_names()
    assert "http.client.request.duration" in otlp.metric_names()
    for body in otlp.raw["/v1/traces"] + otlp.raw["/v1/metrics"]:
        assert SECRET.encode() not in body
    assert server.stats.handshakes == 3


def test_env_var_console_exporters(server: HTTPSTestServer, tmp_path: Path) -> None:
    proc = _run(
        _app(server, tmp_path),
        HTTPMGR_TELEMETRY="true",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
    )
    assert proc.returncode == 0, proc.stderr
    assert '"httpmgr.connection.reused": true' in proc.stdout
    assert '"name": "httpmgr.client.requests"' in proc.stdout
    assert SECRET not in proc.stdout


def test_an_apps_own_providers_are_kept(server: HTTPSTestServer, tmp_path: Path) -> None:
    setup = """
            from opentelemetry import trace, metrics
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            mine, exported = TracerProvider(), InMemorySpanExporter()
            reader = InMemoryMetricReader()
            mine.add_span_processor(SimpleSpanProcessor(exported))
            trace.set_tracer_provider(mine)
            my_meters = MeterProvider(metric_readers=[reader])
            metrics.set_meter_provider(my_meters)
            import atexit
            @atexit.register
            def check():
                assert trace.get_tracer_provider() is mine
                assert metrics.get_meter_provider() is my_meters
                reused = [s.attributes.get("httpmgr.connection.reused") for s in
                          exported.get_finished_spans() if s.kind.name == "CLIENT"]
                names = {m.name for rm in reader.get_metrics_data().resource_metrics
                         for sm in rm.scope_metrics for m in sm.metrics}
                print("CHECK", sorted(reused), "httpmgr.client.requests" in names)
    """
    proc = _run(
        _app(server, tmp_path, textwrap.indent(textwrap.dedent(setup), "            ").strip()),
        HTTPMGR_TELEMETRY="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{unused_port()}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "CHECK [False, False, False, True, True, True, True, True, True] True" in proc.stdout


def test_exporter_down_costs_requests_nothing(server: HTTPSTestServer, tmp_path: Path) -> None:
    port = unused_port()
    started = time.monotonic()
    proc = _run(
        _app(server, tmp_path),
        HTTPMGR_TELEMETRY="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_METRIC_EXPORT_INTERVAL="100",
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "requests ok" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The exporter's own retries happen on its threads; exit does not wait them out
    # (the OTLP timeout is 10 s per attempt).
    assert elapsed < 10, elapsed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"HTTPMGR_TELEMETRY": "maybe"},
            "HTTPMGR_TELEMETRY='maybe' is not valid: expected one of 1",
        ),
        (
            {"HTTPMGR_TELEMETRY": "1", "OTEL_TRACES_EXPORTER": "jaeger"},
            "OTEL_TRACES_EXPORTER='jaeger' is not valid: expected a comma-separated list of otlp",
        ),
        (
            {"HTTPMGR_TELEMETRY": "1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is not valid: expected http/protobuf",
        ),
    ],
)
def test_bad_telemetry_variables_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        configure_from_env(HttpClientManager(environ={}), env)
    assert message in str(excinfo.value)


def test_telemetry_off_by_default(manager: HttpClientManager) -> None:
    assert configure_from_env(manager, {}) is None
    assert configure_from_env(manager, {"HTTPMGR_TELEMETRY": "0"}) is None
    assert manager.sink is None


def test_a_failing_sink_never_breaks_a_request(
    driver: Driver, manager: HttpClientManager, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Any] = []

    def broken(event: Any) -> None:
        calls.append(event)
        raise RuntimeError("bug in a probe")

    manager.set_sink(broken)
    for _ in range(3):
        assert driver.get() == "ok"
    assert len(calls) > 3
    failures = [r for r in caplog.records if "httpmgr.telemetry_failed" in r.getMessage()]
    assert len(failures) == 1  # reported once per client kind, not per event
