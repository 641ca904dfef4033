"""The application the end-to-end tests observe: real traffic through all three client
kinds, with telemetry switched on by environment variables only.

Phase 0 makes every kind of series exist (requests, stale retries, queue waits, connect
errors); phase 1 is the measured window: per kind, every fifth request asks the server
to close the connection, so the server-side counters predict a reuse ratio and a
handshake rate exactly. Prints one JSON line per phase boundary, then serves metrics
until its standard input closes.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from typing import Any

import httpx

import httpmgr
from httpmgr.testing import HTTPSTestServer, unused_port

KINDS = ("httpx", "httpx_async", "aiohttp")
PHASE1_REQUESTS = 40


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


class Target:
    """Where requests go: a base URL and the SSL context that trusts it."""

    def __init__(self, url: str, ctx: ssl.SSLContext) -> None:
        self.url = url
        self.ctx = ctx

    @classmethod
    def of(cls, server: HTTPSTestServer) -> Target:
        return cls(server.url, server.client_ssl_context())


async def get(kind: str, target: Target, path: str = "/", **settings: Any) -> int:
    url = target.url + path
    if kind == "httpx":
        client = httpmgr.get_http_client(verify=target.ctx, **settings)
        return (await asyncio.to_thread(client.get, url)).status_code
    if kind == "httpx_async":
        aclient = await httpmgr.get_async_http_client(verify=target.ctx, **settings)
        return (await aclient.get(url)).status_code
    session = await httpmgr.get_aiohttp_session(verify=target.ctx, **settings)
    async with session.get(url) as response:
        await response.read()
        return response.status


async def main() -> None:
    httpmgr.default_manager()  # telemetry on: the metrics endpoint is up from here
    say(phase=-1, ready=True)
    await asyncio.to_thread(sys.stdin.readline)  # until Prometheus scrapes us
    servers = {kind: HTTPSTestServer().start() for kind in KINDS}
    legacy, faulty, slow = (HTTPSTestServer().start() for _ in range(3))
    targets = {kind: Target.of(srv) for kind, srv in servers.items()}
    legacy_target, faulty_target, slow_target = (Target.of(s) for s in (legacy, faulty, slow))
    faulty.faults.drop_after = 1

    # phase 0: every series exists
    for kind in KINDS:
        await get(kind, targets[kind], "/?api_key=e2e-secret-value")
        await get(kind, faulty_target)
        await get(kind, faulty_target)  # dropped on the kept-alive connection, retried
        await asyncio.gather(
            *(get(kind, slow_target, "/delay/0.2", max_connections=2, max_keepalive_connections=2)
              for _ in range(6))
        )  # fmt: skip
        # a port nothing listens on, and a server whose certificate we do not trust
        refused = Target(f"https://127.0.0.1:{unused_port()}", targets[kind].ctx)
        untrusted = Target(slow.url, targets[kind].ctx)
        for target in (refused, untrusted):
            try:
                await get(kind, target)
            except Exception as exc:  # the error is what we want recorded
                say(phase=0, error=type(exc).__name__, kind=kind)
    await asyncio.sleep(2.5)  # at least two scrapes see phase 0 settled

    for srv in (*servers.values(), legacy):
        srv.stats.reset()
    say(phase=1, start=time.time())
    # The test bounds the window by the last scrape that began before `start`: let it
    # finish (scrapes are 1 s apart) before the first request of the window.
    await asyncio.sleep(1.2)
    for i in range(PHASE1_REQUESTS):
        path = "/close" if i % 5 == 4 else "/"
        for kind in KINDS:
            await get(kind, targets[kind], path)
        if i % 4 == 0:  # the pattern httpmgr replaces, measured in every-client mode
            with httpx.Client(verify=legacy_target.ctx) as client:
                await asyncio.to_thread(client.get, legacy.url)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    stats = {
        kind: {"requests": srv.stats.requests, "handshakes": srv.stats.handshakes}
        for kind, srv in servers.items()
    }
    stats["legacy"] = {"requests": legacy.stats.requests, "handshakes": legacy.stats.handshakes}
    say(phase=2, end=time.time(), servers=stats)
    # keep serving /metrics (and the loop's clients alive) until the test is done
    await asyncio.to_thread(sys.stdin.read)
    for srv in (*servers.values(), legacy, faulty, slow):
        srv.close()


if __name__ == "__main__":
    asyncio.run(main())
