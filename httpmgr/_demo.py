"""``httpmgr demo``: the same workload with a client per request and with httpmgr.

For each client kind it sends the same GETs twice — building a new client for every
request, then through httpmgr's shared client — and reports what the *server* counted
(TCP accepts, TLS handshakes; with the embedded server), what httpmgr's telemetry
counted, latency percentiles, the client's CPU time and the speed-up. The embedded
HTTPS server runs in a process of its own so that its CPU is not the client's.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from ._events import ConnectionAcquired, Event, EventSink, TLSHandshake
from ._manager import HttpClientManager
from ._settings import Settings

__all__ = ["KINDS", "Row", "run_demo", "render_table"]

KINDS = ("httpx", "httpx_async", "aiohttp")


@dataclass
class Row:
    client: str
    variant: str  # "per-request" or "httpmgr"
    requests: int
    errors: int
    server_tcp_connects: int | None
    server_tls_handshakes: int | None
    telemetry_tls_handshakes: int | None
    telemetry_reuse_ratio: float | None
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    wall_s: float
    requests_per_s: float
    speedup: float | None = None


class _Counter:
    """Counts handshakes and reuse from probe events, passing them on to ``forward``."""

    def __init__(self, forward: EventSink | None) -> None:
        self.forward = forward
        self.handshakes = self.requests = self.reused = 0
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, TLSHandshake):
                self.handshakes += 1
            elif isinstance(event, ConnectionAcquired):
                self.requests += 1
                self.reused += event.reused
        if self.forward is not None:
            self.forward(event)

    def reset(self) -> None:
        with self._lock:
            self.handshakes = self.requests = self.reused = 0


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self._lock = threading.Lock()
        self._shown = -1

    def step(self, label: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += 1
            pct = self.done * 100 // self.total
            if pct != self._shown:
                self._shown = pct
                bar = "#" * (pct // 4)
                sys.stderr.write(f"\r[{bar:<25}] {pct:3d}%  {label:<32}")
                if self.done == self.total:
                    sys.stderr.write("\n")
                sys.stderr.flush()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _run_sync(
    fn: Callable[[], None], n: int, concurrency: int, tick: Callable[[], None]
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0

    def one(_: int) -> None:
        nonlocal errors
        start = time.perf_counter()
        try:
            fn()
        except Exception:
            errors += 1
        latencies.append(time.perf_counter() - start)
        tick()

    if concurrency == 1:
        for i in range(n):
            one(i)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
    return latencies, errors


async def _run_async(
    fn: Callable[[], Awaitable[None]], n: int, concurrency: int, tick: Callable[[], None]
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal errors
        async with gate:
            start = time.perf_counter()
            try:
                await fn()
            except Exception:
                errors += 1
            latencies.append(time.perf_counter() - start)
            tick()

    await asyncio.gather(*(one() for _ in range(n)))
    return latencies, errors


class _Workload:
    def __init__(self, url: str, verify: ssl.SSLContext | bool, manager: HttpClientManager) -> None:
        self.url, self.verify, self.manager = url, verify, manager

    def run(
        self, kind: str, variant: str, n: int, concurrency: int, tick: Callable[[], None]
    ) -> tuple[list[float], int]:
        url, verify, manager = self.url, self.verify, self.manager
        if kind == "httpx":

            def per_request() -> None:
                with httpx.Client(verify=verify) as client:
                    client.get(url).raise_for_status()

            def managed() -> None:
                manager.get_http_client().get(url).raise_for_status()

            fn = per_request if variant == "per-request" else managed
            return _run_sync(fn, n, concurrency, tick)

        async def main() -> tuple[list[float], int]:
            import aiohttp

            async def httpx_per_request() -> None:
                async with httpx.AsyncClient(verify=verify) as client:
                    (await client.get(url)).raise_for_status()

            async def httpx_managed() -> None:
                client = await manager.get_async_http_client()
                (await client.get(url)).raise_for_status()

            async def aiohttp_per_request() -> None:
                connector = aiohttp.TCPConnector(ssl=verify)
                async with (
                    aiohttp.ClientSession(connector=connector) as session,
                    session.get(url) as response,
                ):
                    response.raise_for_status()
                    await response.read()

            async def aiohttp_managed() -> None:
                session = await manager.get_aiohttp_session()
                async with session.get(url) as response:
                    response.raise_for_status()
                    await response.read()

            fns: dict[tuple[str, str], Callable[[], Awaitable[None]]] = {
                ("httpx_async", "per-request"): httpx_per_request,
                ("httpx_async", "httpmgr"): httpx_managed,
                ("aiohttp", "per-request"): aiohttp_per_request,
                ("aiohttp", "httpmgr"): aiohttp_managed,
            }
            return await _run_async(fns[(kind, variant)], n, concurrency, tick)

        return asyncio.run(main())


def run_demo(
    *,
    requests: int = 300,
    concurrency: int = 1,
    kinds: Sequence[str] = KINDS,
    url: str | None = None,
    progress: bool = True,
) -> list[Row]:
    """Run the comparison; with ``url`` None, against an embedded HTTPS server."""
    from .testing import ServerProcess

    server = ServerProcess() if url is None else None
    try:
        target = url or (server.url if server else "")
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=server.ca_path) if server else True
        )
        manager = HttpClientManager(
            Settings(verify=verify, max_keepalive_connections=max(20, concurrency)),
            environ={k: v for k, v in os.environ.items() if not k.startswith("HTTPMGR_")},
        )
        forward = None
        if os.environ.get("HTTPMGR_TELEMETRY", "").strip():
            from .telemetry import configure_from_env

            forward = configure_from_env(manager)
        counter = _Counter(forward)
        manager.set_sink(counter)
        every = _every_client(counter)
        workload = _Workload(target, verify, manager)
        bar = _Progress(2 * len(kinds) * requests, progress and sys.stderr.isatty())
        rows: list[Row] = []
        for kind in kinds:
            for variant in ("per-request", "httpmgr"):
                rows.append(
                    _measure(workload, kind, variant, requests, concurrency, server, counter, bar)
                )
            rows[-1].speedup = rows[-1].requests_per_s / rows[-2].requests_per_s
        manager.close_all()
        if every is not None:
            every.disable()
        return rows
    finally:
        if server is not None:
            server.close()


def _every_client(counter: _Counter) -> Any:
    """Count the per-request httpx clients too (aiohttp ones are not measured)."""
    from ._every_client import EveryClient

    if "httpmgr.telemetry" in sys.modules:
        from . import telemetry

        if telemetry._every_client is not None:  # already measured, by the recorder
            return None

    every = EveryClient(counter)
    every.enable()
    return every


def _measure(
    workload: _Workload,
    kind: str,
    variant: str,
    n: int,
    concurrency: int,
    server: Any,
    counter: _Counter,
    bar: _Progress,
) -> Row:
    if server is not None:
        server.reset()
    counter.reset()
    cpu, wall = time.process_time(), time.perf_counter()
    latencies, errors = workload.run(
        kind, variant, n, concurrency, lambda: bar.step(f"{kind} {variant}")
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stats = server.stats() if server is not None else None
    counted = not (kind == "aiohttp" and variant == "per-request")
    return Row(
        client=kind,
        variant=variant,
        requests=n,
        errors=errors,
        server_tcp_connects=stats["accepts"] if stats else None,
        server_tls_handshakes=stats["handshakes"] if stats else None,
        telemetry_tls_handshakes=counter.handshakes if counted else None,
        telemetry_reuse_ratio=(counter.reused / counter.requests)
        if counted and counter.requests
        else None,
        p50_ms=_percentile(latencies, 0.50) * 1e3,
        p99_ms=_percentile(latencies, 0.99) * 1e3,
        cpu_ms=cpu * 1e3,
        wall_s=wall,
        requests_per_s=n / wall if wall else 0.0,
    )


def render_table(rows: Sequence[Row], *, url: str, concurrency: int) -> str:
    def fmt(value: Any, spec: str = "") -> str:
        return "n/a" if value is None else format(value, spec)

    header = (
        f"{'client':<12}{'variant':<13}{'requests':>9}{'TCP (srv)':>11}{'TLS (srv)':>11}"
        f"{'TLS (otel)':>11}{'reuse':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>9}"
        f"{'req/s':>9}{'speed-up':>10}"
    )
    lines = [
        f"{rows[0].requests if rows else 0} GETs per row to {url}, concurrency {concurrency}; "
        "(srv) = counted by the server, (otel) = counted by httpmgr's probes",
        "",
        header,
        "-" * len(header),
    ]
    for r in rows:
        lines.append(
            f"{r.client:<12}{r.variant:<13}{r.requests:>9}{fmt(r.server_tcp_connects):>11}"
            f"{fmt(r.server_tls_handshakes):>11}{fmt(r.telemetry_tls_handshakes):>11}"
            f"{fmt(r.telemetry_reuse_ratio, '.1%'):>8}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{r.cpu_ms:>9.0f}{r.requests_per_s:>9.0f}"
            f"{fmt(None if r.speedup is None else f'{r.speedup:.1f}x'):>10}"
        )
    if any(r.errors for r in rows):
        lines.append("")
        lines.append("errors: " + ", ".join(f"{r.client} {r.variant}: {r.errors}" for r in rows))
    return "\n".join(lines)


def as_json(rows: Sequence[Row], *, url: str, concurrency: int) -> dict[str, Any]:
    return {"url": url, "concurrency": concurrency, "rows": [asdict(r) for r in rows]}
