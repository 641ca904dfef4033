"""Bad input gets a clear error and sends nothing; processes fork and shut down cleanly."""

from __future__ import annotations

import os
import threading
import time

import aiohttp
import httpx
import pytest

import httpmgr
from httpmgr.testing import HTTPSTestServer
from tests.drivers import Driver


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "127.0.0.1/no-scheme",
        "https://",
        "http://[::1",
    ],
)
def test_invalid_urls_and_schemes_are_clear_errors(
    driver: Driver, server: HTTPSTestServer, url: str
) -> None:
    driver.base_url = ""
    with pytest.raises(
        (
            httpx.UnsupportedProtocol,
            httpx.InvalidURL,
            aiohttp.InvalidURL,
            aiohttp.NonHttpUrlClientError,
            ValueError,
        )
    ) as excinfo:
        driver.get(url)
    assert str(excinfo.value)
    assert server.stats.accepts == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Api-Key", "k\r\nX-Injected: 1"), ("X-Sign", "v\nEvil: 1"), ("Bad\r\nName", "v")],
)
def test_headers_with_cr_lf_are_refused_before_sending(
    driver: Driver, server: HTTPSTestServer, name: str, value: str
) -> None:
    async def aiohttp_get() -> None:
        session = await driver.manager.get_aiohttp_session()
        async with session.get(server.url, headers={name: value}) as r:
            await r.read()

    async def httpx_async_get() -> None:
        client = await driver.manager.get_async_http_client()
        await client.get(server.url, headers={name: value})

    def send() -> None:
        if driver.kind == "httpx":
            driver.manager.get_http_client().get(server.url, headers={name: value})
        elif driver.kind == "httpx_async":
            driver.run(httpx_async_get())  # type: ignore[attr-defined]
        else:
            driver.run(aiohttp_get())  # type: ignore[attr-defined]

    with pytest.raises((httpx.LocalProtocolError, ValueError, aiohttp.ClientError)):
        send()
    assert server.stats.requests == 0
    assert all("X-Injected" not in h and "Evil" not in h for h in server.stats.headers)
    assert driver.get() == "ok"  # the pool is fine


def test_fork_with_requests_in_flight_in_the_parent(server: HTTPSTestServer) -> None:
    client = httpmgr.get_http_client(ca_bundle=server.ca_path, max_keepalive_connections=8)
    errors: list[BaseException] = []
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            try:
                assert client.get(server.url + "/delay/0.01").text == "ok"
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=busy) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        pids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:  # child: its own pool, the parent's sockets untouched
                code = 1
                try:
                    child = httpmgr.get_http_client(ca_bundle=server.ca_path)
                    code = 0 if child is not client and child.get(server.url).text == "ok" else 1
                finally:
                    os._exit(code)
            pids.append(pid)
            time.sleep(0.05)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
        httpmgr.close_all_http_clients()
    assert codes == [0, 0, 0]
    assert errors == []
