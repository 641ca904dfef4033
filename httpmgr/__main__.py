"""``python -m httpmgr demo``: per-request clients vs the managed client, side by side.

Starts an HTTPS server on 127.0.0.1 with a fresh CA, sends the same sequential GETs
with a new ``httpx.Client`` per request and with :func:`httpmgr.get_http_client`, and
prints what the *server* counted (TCP accepts, TLS handshakes) and the time taken.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import httpx

from ._manager import HttpClientManager
from ._settings import Settings


def _run(requests: int, get: Callable[[], None]) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        get()
    return time.perf_counter() - start


def demo(requests: int) -> int:
    from .testing import HTTPSTestServer

    with HTTPSTestServer() as server:
        ctx = server.client_ssl_context()
        url = server.url

        def per_request() -> None:
            with httpx.Client(verify=ctx) as client:
                client.get(url).raise_for_status()

        manager = HttpClientManager(Settings(verify=ctx), environ={})

        def managed() -> None:
            manager.get_http_client().get(url).raise_for_status()

        rows = []
        for name, fn in (("per-request httpx.Client", per_request), ("httpmgr", managed)):
            server.stats.reset()
            elapsed = _run(requests, fn)
            rows.append((name, server.stats.accepts, server.stats.handshakes, elapsed))
        manager.close_all()

    print(f"{requests} sequential HTTPS GETs to {url} (counts are the server's own)\n")
    print(f"{'client':<26}{'TCP accepts':>12}{'TLS handshakes':>16}{'ms/request':>12}")
    for name, accepts, handshakes, elapsed in rows:
        print(f"{name:<26}{accepts:>12}{handshakes:>16}{elapsed / requests * 1e3:>12.3f}")
    speedup = rows[0][3] / rows[1][3]
    print(f"\nhttpmgr was {speedup:.1f}x faster and made {rows[1][2]} handshake(s).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="httpmgr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo_cmd = sub.add_parser("demo", help="compare per-request clients with httpmgr")
    demo_cmd.add_argument("-n", "--requests", type=int, default=300)
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be >= 1")
    return demo(args.requests)


if __name__ == "__main__":
    sys.exit(main())
