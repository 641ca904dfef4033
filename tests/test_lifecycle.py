"""Threads, event loops, forks and interpreter exit."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import httpx
import pytest

from httpmgr import HttpClientManager
from httpmgr.testing import HTTPSTestServer

from .drivers import run_in_threads


def test_fifty_threads_share_one_client_and_one_pool(
    manager: HttpClientManager, server: HTTPSTestServer
) -> None:
    clients: list[httpx.Client] = []
    barrier = threading.Barrier(50)

    def work() -> None:
        barrier.wait()
        # keep-alive room for every thread: with fewer (httpx's default is 20),
        # each release above the limit closes a connection and the pool churns
        client = manager.get_http_client(max_keepalive_connections=50)
        clients.append(client)
        for _ in range(10):
            assert client.get(server.url).text == "ok"

    errors = run_in_threads(work, 50)
    assert errors == []
    assert len({id(c) for c in clients}) == 1
    assert len({id(c._transport) for c in clients}) == 1
    assert server.stats.requests == 500
    # one pool: never more connections than threads, each reused
    assert server.stats.handshakes <= 50


def test_each_event_loop_gets_its_own_clients_closed_when_it_ends(
    manager: HttpClientManager, server: HTTPSTestServer
) -> None:
    async def use() -> tuple[httpx.AsyncClient, object]:
        client = await manager.get_async_http_client()
        session = await manager.get_aiohttp_session()
        assert (await client.get(server.url)).text == "ok"
        async with session.get(server.url) as r:
            assert await r.text() == "ok"
        return client, session

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first_client, first_session = asyncio.run(use())
        second_client, second_session = asyncio.run(use())  # never "Event loop is closed"
        gc.collect()
    assert first_client is not second_client
    assert first_session is not second_session
    assert first_client.is_closed
    assert second_client.is_closed
    assert first_session.closed  # type: ignore[attr-defined]
    assert second_session.closed  # type: ignore[attr-defined]
    assert server.stats.handshakes == 4
    assert server.stats.open_connections == 0 or _eventually_zero(server)


def _eventually_zero(server: HTTPSTestServer) -> bool:
    import time

    deadline = time.monotonic() + 2
    while server.stats.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.stats.open_connections == 0


def test_loops_in_threads_are_independent(
    manager: HttpClientManager, server: HTTPSTestServer
) -> None:
    async def use() -> None:
        client = await manager.get_async_http_client()
        session = await manager.get_aiohttp_session()
        for _ in range(5):
            assert (await client.get(server.url)).status_code == 200
            async with session.get(server.url) as r:
                assert r.status == 200

    errors = run_in_threads(lambda: asyncio.run(use()), 8)
    assert errors == []
    assert server.stats.requests == 80
    assert server.stats.handshakes == 16  # one per loop per kind
    assert _eventually_zero(server)


@pytest.mark.asyncio
async def test_clients_of_a_loop_can_be_closed_from_it(
    manager: HttpClientManager, server: HTTPSTestServer
) -> None:
    client = await manager.get_async_http_client()
    session = await manager.get_aiohttp_session()
    await client.get(server.url)
    await manager.aclose_all()
    assert client.is_closed
    assert session.closed
    fresh = await manager.get_async_http_client()
    assert fresh is not client
    assert (await fresh.get(server.url)).text == "ok"


def test_async_client_outside_a_loop_is_a_clear_error(manager: HttpClientManager) -> None:
    coro = manager.get_async_http_client()
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        coro.send(None)


def _child_requests(url: str, ca_path: str, queue: multiprocessing.Queue[object]) -> None:
    import httpmgr

    try:
        client = httpmgr.get_http_client(ca_bundle=ca_path)
        queue.put((id(client), client.get(url).text))
    except BaseException as exc:  # report to the parent
        queue.put(repr(exc))


@pytest.mark.parametrize("method", ["os.fork", "multiprocessing"])
def test_forked_child_gets_fresh_pools_and_parent_pool_survives(
    server: HTTPSTestServer, method: str
) -> None:
    import httpmgr

    client = httpmgr.get_http_client(ca_bundle=server.ca_path)
    try:
        assert client.get(server.url).text == "ok"
        assert server.stats.handshakes == 1
        if method == "os.fork":
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child
                try:
                    child = httpmgr.get_http_client(ca_bundle=server.ca_path)
                    ok = child is not client and child.get(server.url).text == "ok"
                    os.write(w, b"1" if ok else b"0")
                finally:
                    os._exit(0)
            os.close(w)
            assert os.read(r, 1) == b"1"
            os.close(r)
            os.waitpid(pid, 0)
        else:
            ctx = multiprocessing.get_context("fork")
            queue: multiprocessing.Queue[object] = ctx.Queue()
            proc = ctx.Process(target=_child_requests, args=(server.url, server.ca_path, queue))
            proc.start()
            result = queue.get(timeout=30)
            proc.join(30)
            assert isinstance(result, tuple), result
            assert result[1] == "ok"
            assert proc.exitcode == 0
        assert server.stats.handshakes == 2  # the child made its own connection
        # The parent's kept-alive connection was not touched: it is reused as it was.
        assert httpmgr.get_http_client(ca_bundle=server.ca_path) is client
        assert client.get(server.url).text == "ok"
        assert server.stats.handshakes == 2
    finally:
        httpmgr.close_all_http_clients()


def test_clients_are_closed_at_exit_without_warnings(
    server: HTTPSTestServer, tmp_path: Path
) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio
            import httpmgr

            URL, CA = {server.url!r}, {server.ca_path!r}

            async def main():
                c = await httpmgr.get_async_http_client(ca_bundle=CA)
                s = await httpmgr.get_aiohttp_session(ca_bundle=CA)
                await c.get(URL)
                async with s.get(URL) as r:
                    await r.read()

            httpmgr.get_http_client(ca_bundle=CA).get(URL)
            asyncio.run(main())
            # a loop managed by hand: the sync close reaches its clients too
            loop = asyncio.new_event_loop()
            loop.run_until_complete(main())
            httpmgr.close_all_http_clients()
            loop.close()
            # and clients used again after that are closed at exit
            httpmgr.get_http_client(ca_bundle=CA).get(URL)
            print("done")
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert proc.stderr == ""
    assert server.stats.handshakes == 6
    assert _eventually_zero(server)
