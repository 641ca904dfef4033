"""The fault matrix: every client kind, telemetry on, against the fault-injecting server.

Each case asserts the user-visible outcome, the telemetry seen, and that the pool
recovers: the next request works and no connection is left active.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import httpx
import pytest

from httpmgr import _names as n
from httpmgr.testing import HTTPSTestServer, unused_port
from tests.drivers import DRIVERS, Driver
from tests.otel import Telemetry

TIMEOUTS = (httpx.TimeoutException, aiohttp.ServerTimeoutError, asyncio.TimeoutError)


def _recovered(driver: Driver, telemetry: Telemetry) -> None:
    """The next request works and, once it is done, no connection is active."""
    assert driver.get() == "ok"
    driver.settle()
    active = telemetry.value(n.OPEN_CONNECTIONS, **{n.CONNECTION_STATE: "active"})
    assert active == 0


def test_server_closes_idle_connections_before_the_client_would(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    with server.faulty(keepalive_timeout=0.1):
        driver.get()
        time.sleep(0.3)
        driver.settle()  # an application's event loop runs: it sees the server's FIN
        assert driver.get() == "ok"
    driver.settle()
    [closed] = telemetry.points(n.CONNECTION_DURATION, **{n.CLOSE_REASON: "server_closed"})
    assert closed.count == 1
    assert 0.1 <= closed.sum < 5  # its lifetime: opened, idle 0.1 s, closed by the server
    assert telemetry.value(n.RETRIES) == 0  # seen closed before sending: nothing to retry
    _recovered(driver, telemetry)


def test_client_expires_idle_connections_first(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    driver.get(keepalive_expiry=0.2)
    time.sleep(0.6)
    driver.settle()
    assert driver.get(keepalive_expiry=0.2) == "ok"
    driver.settle()
    expired = telemetry.points(n.CONNECTION_DURATION, **{n.CLOSE_REASON: "idle_expired"})
    assert sum(p.count for p in expired) == 1
    assert server.stats.handshakes == 2
    assert server.stats.closed_idle == 0  # the server never had to


@pytest.mark.parametrize("expiry", [0.15, 0.2, 0.25])
def test_server_and_client_expire_at_about_the_same_time(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry, expiry: float
) -> None:
    with server.faulty(keepalive_timeout=0.2):
        for _ in range(3):
            assert driver.get(keepalive_expiry=expiry) == "ok"
            time.sleep(0.2)
    assert server.stats.requests == 3
    _recovered(driver, telemetry)


def test_server_closes_after_n_requests(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    with server.faulty(max_requests=2):
        for _ in range(6):
            assert driver.get() == "ok"
    driver.settle()
    assert server.stats.handshakes == 3
    closed = telemetry.points(n.CONNECTION_DURATION, **{n.CLOSE_REASON: "server_closed"})
    assert sum(p.count for p in closed) == 3
    assert telemetry.value(n.REQUESTS, **{n.CONNECTION_REUSED: True}) == 3


def test_connection_reset_mid_response(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    driver.get()
    with pytest.raises((httpx.TransportError, aiohttp.ClientError)):
        driver.get("/reset?size=100000")
    driver.settle()
    closed = telemetry.points(n.CONNECTION_DURATION)
    assert sum(p.count for p in closed) == 1
    # The sync ssl socket reads a reset as a "ragged EOF" (b""), so httpx's sync probe
    # sees the server close the connection; anyio and aiohttp see it fail.
    expected = "server_closed" if driver.kind == "httpx" else "error"
    assert [p.attributes[n.CLOSE_REASON] for p in closed] == [expected]
    assert telemetry.value(n.RETRIES) == 0  # a response had started: never retried
    _recovered(driver, telemetry)


def test_server_stalls_past_the_read_timeout(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    started = time.monotonic()
    with pytest.raises(TIMEOUTS):
        driver.get("/delay/3", timeout=0.3)
    assert time.monotonic() - started < 2
    _recovered(driver, telemetry)


def test_server_refuses(driver: Driver, telemetry: Telemetry) -> None:
    good = driver.base_url
    driver.base_url = f"https://127.0.0.1:{unused_port()}"
    with pytest.raises((httpx.ConnectError, aiohttp.ClientConnectorError)):
        driver.get()
    [failed] = telemetry.points(n.CONNECT_DURATION)
    assert failed.attributes[n.ERROR_TYPE] in {"ConnectError", "ClientConnectorError"}
    assert telemetry.value(n.CONNECTIONS_OPENED) == 0
    driver.base_url = good
    _recovered(driver, telemetry)


@pytest.mark.parametrize("problem", ["untrusted", "wrong_hostname"])
def test_tls_failure_is_clear_counted_and_not_retried(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry, problem: str
) -> None:
    # untrusted: a CA the client does not know; wrong_hostname: the client's CA, but a
    # certificate for another name
    other = (
        HTTPSTestServer(ca=server.ca, hostnames=("example.test",))
        if problem == "wrong_hostname"
        else HTTPSTestServer()
    )
    with other:
        good = driver.base_url
        driver.base_url = other.url
        with pytest.raises((httpx.ConnectError, aiohttp.ClientConnectorError)) as excinfo:
            driver.get()
        text = f"{excinfo.value!r} {excinfo.value.__cause__!r}"
        expected = "CERTIFICATE_VERIFY_FAILED" if problem == "untrusted" else "match"
        assert expected in text
        assert other.stats.accepts == 1  # not retried
        deadline = time.monotonic() + 2  # the server learns of the failure a moment later
        while other.stats.handshake_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert other.stats.handshake_failures == 1
        assert other.stats.requests == 0
        [failed] = telemetry.points(n.TLS_HANDSHAKES)
        assert failed.value == 1
        assert failed.attributes[n.ERROR_TYPE]
        driver.base_url = good
    _recovered(driver, telemetry)


def test_pool_exhaustion_is_a_clear_pool_timeout(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry
) -> None:
    settings: dict[str, Any] = {
        "max_connections": 1,
        "max_keepalive_connections": 1,
        "pool_timeout": 0.2,
    }
    with pytest.raises((httpx.PoolTimeout, aiohttp.ConnectionTimeoutError, TimeoutError)):
        driver.concurrent(2, "/delay/0.8", **settings)
    assert server.stats.max_open_connections == 1
    driver.settle()
    time.sleep(0.8)  # the slow request finishes
    assert driver.get(**settings) == "ok"
    # the request that timed out waited in the queue, and the histogram says so
    [gave_up] = [p for p in telemetry.points(n.TIME_IN_QUEUE) if n.ERROR_TYPE in p.attributes]
    assert gave_up.count == 1
    assert gave_up.min >= 0.15
    assert gave_up.attributes[n.ERROR_TYPE] in {"PoolTimeout", "ConnectionTimeoutError"}


def test_every_kind_is_covered() -> None:
    assert set(DRIVERS) == {"httpx", "httpx_async", "aiohttp"}
