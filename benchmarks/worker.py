"""One benchmark variant in a fresh process: ``python -m benchmarks.worker SPEC_JSON``.

Prints one JSON line: requests, errors, client CPU seconds and wall seconds of the
measured requests (after a warm-up), peak RSS, and metric series counted.
"""

from __future__ import annotations

import asyncio
import json
import resource
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

WARMUP = 200


def _sdk() -> tuple[Any, Any, Any]:
    """SDK providers whose exporters discard everything (export cost without a network)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return tracer_provider, meter_provider, reader


def _series(reader: Any) -> int:
    data = reader.get_metrics_data()
    return sum(
        len(m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )


def _ssl(spec: dict[str, Any]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=spec["ca_path"])


def _default_verify_context(ca_path: str) -> ssl.SSLContext:
    """What httpx's default ``verify=True`` costs per client: load the CA bundle."""
    import certifi

    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.load_verify_locations(ca_path)  # and trust the loopback test server
    return ctx


def build(spec: dict[str, Any]) -> tuple[str, Any, Any]:
    """(mode, request function, metric reader or None) for the variant."""
    from httpmgr import HttpClientManager, Settings

    kind, variant, url = spec["kind"], spec["variant"], spec["url"]
    ctx = _ssl(spec)
    settings = Settings(verify=ctx, max_keepalive_connections=max(20, spec["concurrency"]))
    manager = HttpClientManager(settings, environ={})
    reader = None
    tracer_provider = meter_provider = None
    if variant in ("managed_on", "bare_contrib"):
        tracer_provider, meter_provider, reader = _sdk()
    if variant == "managed_on":
        from httpmgr.telemetry import instrument

        instrument(manager, tracer_provider=tracer_provider, meter_provider=meter_provider)

    if kind == "httpx":
        if variant == "per_request_shared_ctx":

            def fn() -> None:
                with httpx.Client(verify=ctx) as c:
                    c.get(url)

        elif variant == "per_request_default_verify":

            def fn() -> None:
                with httpx.Client(verify=_default_verify_context(spec["ca_path"])) as c:
                    c.get(url)

        elif variant.startswith("bare"):
            client = httpx.Client(verify=ctx, limits=_limits(spec))
            if variant == "bare_contrib":
                from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

                HTTPXClientInstrumentor.instrument_client(
                    client, tracer_provider=tracer_provider, meter_provider=meter_provider
                )

            def fn() -> None:
                client.get(url)

        else:

            def fn() -> None:
                manager.get_http_client().get(url)

        return "sync", fn, reader

    async def make() -> Callable[[], Awaitable[None]]:
        import aiohttp

        if kind == "httpx_async":
            if variant.startswith("bare"):
                aclient = httpx.AsyncClient(verify=ctx, limits=_limits(spec))
                if variant == "bare_contrib":
                    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

                    HTTPXClientInstrumentor.instrument_client(
                        aclient, tracer_provider=tracer_provider, meter_provider=meter_provider
                    )

                async def afn() -> None:
                    await aclient.get(url)

                return afn

            async def managed() -> None:
                await (await manager.get_async_http_client()).get(url)

            return managed

        if variant.startswith("bare"):
            configs = []
            if variant == "bare_contrib":
                from opentelemetry.instrumentation.aiohttp_client import create_trace_config

                configs.append(
                    create_trace_config(
                        tracer_provider=tracer_provider, meter_provider=meter_provider
                    )
                )
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ctx, limit=100), trace_configs=configs
            )

            async def sfn() -> None:
                async with session.get(url) as r:
                    await r.read()

            return sfn

        async def managed_session() -> None:
            s = await manager.get_aiohttp_session()
            async with s.get(url) as r:
                await r.read()

        return managed_session

    return "async", make, reader


def _limits(spec: dict[str, Any]) -> httpx.Limits:
    c = max(20, spec["concurrency"])
    return httpx.Limits(max_connections=100, max_keepalive_connections=c, keepalive_expiry=30)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    mode, fn, reader = build(spec)
    n, concurrency = spec["requests"], spec["concurrency"]
    errors = 0
    if mode == "sync":
        from concurrent.futures import ThreadPoolExecutor

        def one(_: int = 0) -> None:
            nonlocal errors
            try:
                fn()
            except Exception:
                errors += 1

        pool = ThreadPoolExecutor(concurrency) if concurrency > 1 else None
        for _ in range(WARMUP):
            one()
        cpu, wall = time.process_time(), time.perf_counter()
        if pool is None:
            for _ in range(n):
                one()
        else:
            list(pool.map(one, range(n)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    else:

        async def main() -> tuple[float, float]:
            nonlocal errors
            afn = await fn()
            gate = asyncio.Semaphore(concurrency)

            async def one() -> None:
                nonlocal errors
                async with gate:
                    try:
                        await afn()
                    except Exception:
                        errors += 1

            await asyncio.gather(*(one() for _ in range(WARMUP)))
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            return time.process_time() - cpu, time.perf_counter() - wall

        cpu, wall = asyncio.run(main())
    return {
        "requests": n,
        "errors": errors,
        "cpu_s": cpu,
        "wall_s": wall,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "series": _series(reader) if reader is not None else None,
    }


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
