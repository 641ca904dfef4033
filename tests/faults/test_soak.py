"""Soak: many requests with telemetry on and periodic server restarts, nothing lost.

The default run is short (CI); ``make soak`` runs 100,000 requests
(``HTTPMGR_SOAK_REQUESTS``).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from httpmgr import HttpClientManager
from httpmgr import _names as n
from httpmgr.telemetry import instrument
from httpmgr.testing import HTTPSTestServer
from tests.drivers import Driver

REQUESTS = int(os.environ.get("HTTPMGR_SOAK_REQUESTS", "3000"))
LIMIT = 5
BATCH = 10


class _Discard(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_with_server_restarts(
    driver: Driver, server: HTTPSTestServer, manager: HttpClientManager
) -> None:
    exporter = _Discard()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrument(
        manager,
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    settings = {"max_connections": LIMIT, "max_keepalive_connections": LIMIT}
    per_kind = REQUESTS // 3
    batches = per_kind // BATCH
    restart_every = max(1, batches // 10)  # ten restarts per kind
    rss_after_warm_up = most_held = 0
    for b in range(batches):
        statuses = driver.concurrent(BATCH, "/", **settings)
        assert statuses == [200] * BATCH  # nothing lost, restarts or not
        if b == restart_every // 2:
            rss_after_warm_up = _rss_kib()
        if b % restart_every == restart_every - 1:
            server.restart()
        # What the pool holds open never exceeds its limit. (The server's own count may
        # lag: it sees a connection the client closed go only when it reads the EOF.)
        pools = list(manager.probes[driver.kind].pools)
        held = sum(1 for pool in pools for _ in pool.snapshot())
        assert held <= LIMIT, held
        most_held = max(most_held, held)
    tracer_provider.force_flush()
    assert most_held >= 1  # the pools were really read
    growth_mib = (_rss_kib() - rss_after_warm_up) / 1024
    assert growth_mib < 30, growth_mib
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        m.name: sum(getattr(p, "value", 0) for p in m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert points[n.REQUESTS] >= batches * BATCH
    assert exporter.spans >= batches * BATCH
    # At least once: a retried request may have reached the server before its connection
    # died; every extra request the server saw is one httpmgr (or aiohttp) re-sent.
    retries = points.get(n.RETRIES, 0)
    assert batches * BATCH <= server.stats.requests <= batches * BATCH + retries
    print(
        f"{driver.kind}: {batches * BATCH} requests, {server.stats.handshakes} handshakes, "
        f"RSS growth {growth_mib:.1f} MiB, retries {points.get(n.RETRIES, 0)}"
    )
    tracer_provider.shutdown()
