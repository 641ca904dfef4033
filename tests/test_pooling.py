"""The shared suite: behaviour every client kind has, checked against the server's counts."""

from __future__ import annotations

import aiohttp
import httpx
import pytest

from httpmgr.testing import HTTPSTestServer

from .drivers import Driver


def test_same_call_returns_same_client(driver: Driver) -> None:
    assert driver.client() is driver.client()
    assert driver.client(timeout=5) is driver.client(timeout=5)
    assert driver.client(timeout=5) is not driver.client(timeout=30)


def test_nothing_is_created_before_first_use(driver: Driver, server: HTTPSTestServer) -> None:
    assert server.stats.accepts == 0
    driver.get()
    assert server.stats.accepts == 1


def test_sequential_requests_use_one_handshake(driver: Driver, server: HTTPSTestServer) -> None:
    for _ in range(500):
        assert driver.get() == "ok"
    assert server.stats.requests == 500
    assert server.stats.accepts == 1
    assert server.stats.handshakes == 1


def test_timeouts_share_one_pool_and_are_honoured(driver: Driver, server: HTTPSTestServer) -> None:
    for timeout in (5, 30, 5, 30, None):
        driver.get(timeout=timeout)
    assert server.stats.handshakes == 1
    with pytest.raises((httpx.TimeoutException, aiohttp.ServerTimeoutError, TimeoutError)):
        driver.get("/delay/1", timeout=0.2)
    assert driver.get("/delay/0.3", timeout=5) == "ok"


def test_closing_the_shared_client_like_user_code_does_not_close_it(
    driver: Driver, server: HTTPSTestServer
) -> None:
    before = driver.client()
    driver.close_like_user_code()
    driver.close_like_user_code()  # twice: no "cannot reopen" error either
    assert driver.client() is before
    assert driver.get() == "ok"
    assert server.stats.handshakes == 1


def test_a_really_closed_client_is_recreated(driver: Driver, server: HTTPSTestServer) -> None:
    before = driver.client()
    driver.get()
    driver.close_for_real()
    after = driver.client()
    assert after is not before
    assert driver.get() == "ok"


def test_concurrency_above_the_limit_never_opens_more_connections(
    driver: Driver, server: HTTPSTestServer
) -> None:
    statuses = driver.concurrent(12, "/delay/0.05", max_connections=4, max_keepalive_connections=4)
    assert statuses == [200] * 12
    assert server.stats.max_open_connections <= 4
    assert server.stats.handshakes == 4


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_idempotent_request_on_stale_connection_is_retried(
    driver: Driver, server: HTTPSTestServer, mode: str
) -> None:
    driver.get()
    with server.faulty(drop_after=1, drop_mode=mode):
        assert driver.get() == "ok"  # sent on the dropped connection, retried on a new one
        assert driver.request("PUT", "/echo", b"same")[1] == "same"
    assert server.stats.dropped == 2
    assert server.stats.handshakes == 3


def test_post_on_stale_connection_is_not_retried_and_says_why(
    driver: Driver, server: HTTPSTestServer
) -> None:
    driver.get()
    with (
        server.faulty(drop_after=1),
        pytest.raises((httpx.RemoteProtocolError, aiohttp.ServerDisconnectedError)) as excinfo,
    ):
        driver.request("POST", "/echo", b"order")
    message = str(excinfo.value)
    assert "POST" in message
    assert "not idempotent" in message
    assert "connection that the server" in message
    assert "not retried" in message
    assert server.stats.dropped == 1
    assert server.stats.requests == 1  # the POST never reached the application
    assert driver.get() == "ok"  # the pool recovered


def test_keepalive_timeout_on_server_is_survived(driver: Driver, server: HTTPSTestServer) -> None:
    import time

    with server.faulty(keepalive_timeout=0.1):
        driver.get()
        time.sleep(0.3)
        assert driver.get() == "ok"
    assert server.stats.closed_idle == 1
    assert server.stats.handshakes == 2


def test_connection_close_after_n_requests(driver: Driver, server: HTTPSTestServer) -> None:
    with server.faulty(max_requests=3):
        for _ in range(9):
            assert driver.get() == "ok"
    assert server.stats.handshakes == 3


def test_sync_stale_retry_can_be_switched_off(server: HTTPSTestServer) -> None:
    from httpmgr import HttpClientManager, Settings

    mgr = HttpClientManager(
        Settings(verify=server.client_ssl_context(), retry_stale=False), environ={}
    )
    client = mgr.get_http_client()
    client.get(server.url)
    with server.faulty(drop_after=1), pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url)
    mgr.close_all()


def test_the_per_request_pattern_pays_a_handshake_every_time(server: HTTPSTestServer) -> None:
    """The baseline httpmgr replaces, measured by the same server-side counter."""
    ctx = server.client_ssl_context()
    for _ in range(500):
        with httpx.Client(verify=ctx) as client:
            assert client.get(server.url).text == "ok"
    assert server.stats.accepts == 500
    assert server.stats.handshakes == 500
