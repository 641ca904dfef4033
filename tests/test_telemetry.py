"""Connection telemetry, for every client kind, checked against the server's own counts."""

from __future__ import annotations

import threading
import time

import pytest
from opentelemetry.trace import SpanKind

from httpmgr import HttpClientManager
from httpmgr import _names as n
from httpmgr.testing import HTTPSTestServer

from .drivers import Driver
from .otel import Telemetry


def test_sequential_requests_reuse_one_connection(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    for _ in range(20):
        driver.get()
    kind = {"httpmgr.client": driver.kind}
    assert telemetry.value(n.REQUESTS, **kind, **{n.CONNECTION_REUSED: True}) == 19
    assert telemetry.value(n.REQUESTS, **kind, **{n.CONNECTION_REUSED: False}) == 1
    assert telemetry.value(n.CONNECTIONS_OPENED, **kind) == server.stats.accepts == 1
    assert telemetry.value(n.TLS_HANDSHAKES, **kind) == server.stats.handshakes == 1
    assert telemetry.value(n.TIME_IN_QUEUE, **kind) == 20
    [opened] = telemetry.points(n.CONNECTIONS_OPENED)
    assert opened.attributes["server.address"] == "127.0.0.1"
    assert opened.attributes["server.port"] == server.port
    assert opened.attributes["url.scheme"] == "https"
    [handshake] = telemetry.points(n.TLS_HANDSHAKES)
    assert handshake.attributes[n.TLS_PROTOCOL_VERSION] == "1.3"


def test_request_spans_carry_connection_attributes_and_setup_spans(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    driver.get("/?api_key=K3Y&x=1")
    driver.get("/?api_key=K3Y&x=2")
    requests = [s for s in telemetry.finished() if s.kind is SpanKind.CLIENT]
    assert len(requests) == 2
    first, second = sorted(requests, key=lambda s: s.start_time or 0)
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes[n.CONNECTION_REUSED] is False
    assert second.attributes[n.CONNECTION_REUSED] is True
    assert first.attributes[n.CONNECTION_ID] == second.attributes[n.CONNECTION_ID]
    assert (
        first.attributes[n.CONNECTION_REQUEST_COUNT],
        second.attributes[n.CONNECTION_REQUEST_COUNT],
    ) == (1, 2)
    assert second.attributes[n.CONNECTION_IDLE_TIME] >= 0  # type: ignore[operator]
    assert first.attributes[n.NETWORK_PEER_ADDRESS] == "127.0.0.1"
    assert first.attributes[n.TLS_PROTOCOL_VERSION] == "1.3"
    assert first.attributes[n.URL_FULL] == f"{server.url}/?api_key=REDACTED&x=1"
    # set-up spans: one connection_setup, child of the first request only
    [setup] = telemetry.finished(n.SPAN_CONNECTION_SETUP)
    assert setup.name == f"{n.SPAN_CONNECTION_SETUP} 127.0.0.1:{server.port}"
    assert setup.parent is not None
    assert setup.parent.span_id == first.context.span_id
    [connect] = telemetry.finished(n.SPAN_SOCKET_CONNECT)
    assert connect.parent is not None
    assert connect.parent.span_id == setup.context.span_id
    tls = telemetry.finished(n.SPAN_TLS_HANDSHAKE)
    if driver.kind == "aiohttp":
        assert tls == []  # aiohttp connects and handshakes in one step: no separate span
    else:
        assert [t.parent.span_id for t in tls if t.parent] == [setup.context.span_id]
    assert setup.start_time is not None
    assert first.start_time is not None
    assert first.start_time <= setup.start_time
    assert setup.end_time is not None
    assert first.end_time is not None
    assert setup.end_time <= first.end_time


def test_queue_wait_and_limit_under_concurrency(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    limit, concurrency = 4, 12
    settings = {"max_connections": limit, "max_keepalive_connections": limit}
    statuses = driver.concurrent(concurrency, "/delay/0.1", **settings)
    assert statuses == [200] * concurrency
    assert server.stats.max_open_connections <= limit
    [hist] = telemetry.points(n.TIME_IN_QUEUE)
    assert hist.count == concurrency
    zero_bucket = hist.bucket_counts[0]  # the first bound is 0.0: requests that never waited
    assert hist.count - zero_bucket == concurrency - limit
    assert telemetry.value(n.CONNECTIONS_OPENED) == server.stats.handshakes == limit
    waits = telemetry.finished(n.SPAN_WAIT_FOR_CONNECTION)
    assert len(waits) == concurrency - limit


def test_open_connections_match_the_pool(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    def states() -> dict[str, float]:
        return {
            state: telemetry.value(n.OPEN_CONNECTIONS, **{n.CONNECTION_STATE: state})
            for state in ("active", "idle")
        }

    seen: dict[str, float] = {}

    def sample_while_busy() -> None:
        deadline = time.monotonic() + 5
        while server.stats.requests < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        seen.update(states())

    sampler = threading.Thread(target=sample_while_busy)
    sampler.start()
    driver.concurrent(3, "/delay/0.4")
    sampler.join()
    assert seen == {"active": 3, "idle": 0}
    assert states() == {"active": 0, "idle": 3}
    [limit] = {p.value for p in telemetry.points(n.POOL_MAX_CONNECTIONS)}
    assert limit == 100


def test_stale_retry_is_counted(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    driver.get()
    with server.faulty(drop_after=1):
        driver.get()
    assert server.stats.dropped == 1
    assert telemetry.value(n.RETRIES, **{n.RETRY_REASON: "stale_connection"}) == 1
    assert telemetry.value(n.CONNECTIONS_OPENED) == server.stats.handshakes == 2


def test_failed_connect_is_recorded(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    from httpmgr.testing import unused_port

    driver.base_url = f"https://127.0.0.1:{unused_port()}"
    with pytest.raises(Exception) as excinfo:  # noqa: PT011 - each kind has its own
        driver.get()
    assert "connect" in repr(excinfo.value).lower()
    [point] = telemetry.points(n.CONNECT_DURATION)
    assert point.attributes[n.ERROR_TYPE]
    assert telemetry.value(n.CONNECTIONS_OPENED) == 0


def test_active_requests_go_up_and_down(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    seen: list[float] = []

    def sample() -> None:
        deadline = time.monotonic() + 5
        while server.stats.requests < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        seen.append(telemetry.value(n.ACTIVE_REQUESTS))

    sampler = threading.Thread(target=sample)
    sampler.start()
    driver.concurrent(2, "/delay/0.3")
    sampler.join()
    assert seen == [2]
    assert telemetry.value(n.ACTIVE_REQUESTS) == 0


def test_every_client_mode_shows_unpooled_clients(
    manager: HttpClientManager, server: HTTPSTestServer
) -> None:
    import asyncio

    import httpx

    from httpmgr.telemetry import uninstrument

    tel = Telemetry()
    tel.instrument(manager, all_clients=True)
    try:
        ctx = server.client_ssl_context()
        for _ in range(5):  # the pattern httpmgr replaces
            with httpx.Client(verify=ctx) as client:
                client.get(server.url)

        async def per_request_async() -> None:
            for _ in range(2):
                async with httpx.AsyncClient(verify=ctx) as client:
                    await client.get(server.url)

        asyncio.run(per_request_async())
        for _ in range(5):
            manager.get_http_client().get(server.url)
    finally:
        uninstrument(manager)
    unmanaged = {n.CLIENT_MANAGED: False}
    managed = {n.CLIENT_MANAGED: True}
    assert telemetry_value(tel, n.TLS_HANDSHAKES, **unmanaged, **{"httpmgr.client": "httpx"}) == 5
    assert telemetry_value(tel, n.TLS_HANDSHAKES, **unmanaged) == 7
    assert telemetry_value(tel, n.TLS_HANDSHAKES, **managed) == 1
    assert server.stats.handshakes == 8
    assert telemetry_value(tel, n.REQUESTS, **unmanaged, **{n.CONNECTION_REUSED: False}) == 7
    assert telemetry_value(tel, n.REQUESTS, **managed, **{n.CONNECTION_REUSED: True}) == 4
    closed = tel.points(n.CONNECTION_DURATION, **unmanaged, **{n.CLOSE_REASON: "client_closed"})
    assert sum(p.count for p in closed) == 7
    # patches are gone: a new client is not measured
    before = telemetry_value(tel, n.TLS_HANDSHAKES)
    with httpx.Client(verify=server.client_ssl_context()) as client:
        client.get(server.url)
    assert telemetry_value(tel, n.TLS_HANDSHAKES) == before
    tel.shutdown()


def telemetry_value(tel: Telemetry, name: str, **attrs: object) -> float:
    return tel.value(name, **attrs)
