"""httpx adapters: pooled transports over a probed network backend, managed clients.

Private httpx / httpcore access lives here and in ``_httpx_backend``.
"""

from __future__ import annotations

import ssl
import typing
from types import TracebackType

import httpcore
import httpx

from ._events import Endpoint
from ._httpx_backend import AsyncProbedBackend, BackendState, ProbedBackend
from ._probe import Exchange, Probe, current_exchange
from ._retry import RETRY_REASON, StaleDecision, decide, stale_message
from ._settings import Settings

__all__ = [
    "AsyncPooledTransport",
    "ManagedAsyncClient",
    "ManagedClient",
    "PooledTransport",
]

# Where the transport leaves the Exchange for the pool (httpx passes the request's
# extensions dict through to httpcore's request as the same object).
_EXCHANGE = "httpmgr.exchange"

# Failures that, on a reused connection before any response byte, mean "stale".
_STALE_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError)


# --- pools -----------------------------------------------------------------------------


def _mark_queued(pool_requests: typing.Iterable[typing.Any]) -> None:
    for pool_request in pool_requests:
        if pool_request.is_queued():
            exchange = pool_request.request.extensions.get(_EXCHANGE)
            if exchange is not None:
                exchange.queued = True


def _snapshot(
    probe: Probe, connections: typing.Iterable[typing.Any]
) -> list[tuple[Endpoint, str | None, bool]]:
    rows: list[tuple[Endpoint, str | None, bool]] = []
    for conn in list(connections):
        origin = conn._origin
        inner = conn._connection
        version = "2" if type(inner).__name__ == "HTTP2Connection" else "1.1"
        endpoint = probe.endpoint(
            origin.scheme.decode("ascii"), origin.host.decode("ascii"), origin.port
        )
        rows.append((endpoint, version, conn.is_idle()))
    return rows


class _Pool(httpcore.ConnectionPool):
    """Marks requests the pool could not serve at once as queued (httpcore has no event)."""

    def _assign_requests_to_connections(self) -> list[httpcore.ConnectionInterface]:
        closing = super()._assign_requests_to_connections()
        _mark_queued(self._requests)
        return closing


class _AsyncPool(httpcore.AsyncConnectionPool):
    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing = super()._assign_requests_to_connections()
        _mark_queued(self._requests)
        return closing


# --- transports ------------------------------------------------------------------------


def _pool_kwargs(settings: Settings, ssl_context: ssl.SSLContext) -> dict[str, typing.Any]:
    return {
        "ssl_context": ssl_context,
        "max_connections": settings.max_connections,
        "max_keepalive_connections": settings.max_keepalive_connections,
        "keepalive_expiry": settings.keepalive_expiry,
        "http1": True,
        "http2": settings.http2,
        "retries": settings.connect_retries,
    }


class Scope:
    """One request through a transport, as the probe sees it: ``with Scope(...) as ex:``.

    Makes the request's Exchange current (the network backend finds it there) and reports
    its start and end. Shared by every transport, sync or async: no I/O inside.
    """

    __slots__ = ("_token", "exchange", "probe", "request")

    def __init__(self, probe: Probe, request: httpx.Request) -> None:
        self.probe = probe
        self.request = request

    def __enter__(self) -> Exchange:
        url = self.request.url
        exchange = Exchange(
            self.probe.endpoint(url.scheme, url.host, url.port), self.request.method
        )
        self.request.extensions[_EXCHANGE] = exchange
        self.probe.request_started(exchange, url)
        self.exchange = exchange
        self._token = current_exchange.set(exchange)
        return exchange

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.request.extensions.pop(_EXCHANGE, None)
        self.probe.request_finished(self.exchange, exc)
        current_exchange.reset(self._token)


def _stale_outcome(
    settings: Settings,
    probe: Probe,
    exchange: Exchange,
    request: httpx.Request,
    exc: httpx.TransportError,
    attempt: int,
) -> httpx.TransportError | None:
    """After a failed attempt: None to send again, else the exception to raise."""
    decision = decide(
        exchange, replayable=_replayable(request), attempt=attempt, enabled=settings.retry_stale
    )
    if decision is StaleDecision.RAISE:
        return exc
    if decision is StaleDecision.EXPLAIN:
        return type(exc)(stale_message(exchange, exc), request=request)
    probe.retried(exchange, RETRY_REASON)
    exchange.restart()
    return None


def _note_response(probe: Probe, exchange: Exchange, response: httpx.Response) -> httpx.Response:
    """Remember a server's "Connection: close" (for the close reason, so telemetry only)."""
    if (
        probe.sink is not None
        and exchange.connection is not None
        and response.headers.get("connection", "").lower() == "close"
    ):
        exchange.connection.server_closed = True
    return response


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


class PooledTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` over a probed pool, retrying requests on stale connections.

    It stays an ``HTTPTransport`` so that opentelemetry-instrumentation-httpx and other
    tools that recognise the default transport keep working.
    """

    def __init__(self, settings: Settings, ssl_context: ssl.SSLContext, probe: Probe) -> None:
        super().__init__(verify=ssl_context, http2=settings.http2)
        self.settings = settings
        self.probe = probe
        self.backend_state = BackendState(probe, settings.keepalive_expiry)
        self.max_connections = settings.max_connections
        self._pool = _Pool(
            **_pool_kwargs(settings, ssl_context), network_backend=ProbedBackend(self.backend_state)
        )
        probe.pools.add(self)

    def snapshot(self) -> list[tuple[Endpoint, str | None, bool]]:
        return _snapshot(self.probe, self._pool.connections)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with Scope(self.probe, request) as exchange:
            for attempt in (0, 1):
                try:
                    response = super().handle_request(request)
                    return _note_response(self.probe, exchange, response)
                except _STALE_ERRORS as exc:
                    failure = _stale_outcome(
                        self.settings, self.probe, exchange, request, exc, attempt
                    )
                    if failure is exc:
                        raise
                    if failure is not None:
                        raise failure from exc
            raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.backend_state.closing = True
        super().close()


class AsyncPooledTransport(httpx.AsyncHTTPTransport):
    """The async twin of :class:`PooledTransport`."""

    def __init__(self, settings: Settings, ssl_context: ssl.SSLContext, probe: Probe) -> None:
        super().__init__(verify=ssl_context, http2=settings.http2)
        self.settings = settings
        self.probe = probe
        self.backend_state = BackendState(probe, settings.keepalive_expiry)
        self.max_connections = settings.max_connections
        self._pool = _AsyncPool(
            **_pool_kwargs(settings, ssl_context),
            network_backend=AsyncProbedBackend(self.backend_state),
        )
        probe.pools.add(self)

    def snapshot(self) -> list[tuple[Endpoint, str | None, bool]]:
        return _snapshot(self.probe, self._pool.connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with Scope(self.probe, request) as exchange:
            for attempt in (0, 1):
                try:
                    response = await super().handle_async_request(request)
                    return _note_response(self.probe, exchange, response)
                except _STALE_ERRORS as exc:
                    failure = _stale_outcome(
                        self.settings, self.probe, exchange, request, exc, attempt
                    )
                    if failure is exc:
                        raise
                    if failure is not None:
                        raise failure from exc
            raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        self.backend_state.closing = True
        await super().aclose()


# --- clients ---------------------------------------------------------------------------


def _timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(
        settings.timeout,
        connect=settings.effective_connect_timeout,
        pool=settings.effective_pool_timeout,
    )


class ManagedClient(httpx.Client):
    """An ``httpx.Client`` owned by a manager.

    Closing it from user code (``close()``, or leaving ``with client:``) does nothing:
    other code shares it. :func:`httpmgr.close_all_http_clients` closes it for real.
    """

    def __init__(self, settings: Settings, transport: PooledTransport) -> None:
        super().__init__(
            transport=transport,
            timeout=_timeout(settings),
            follow_redirects=settings.follow_redirects,
            trust_env=settings.trust_env,
        )
        self.httpmgr_settings = settings

    def close(self) -> None:
        """Ignored: the manager owns this client's lifetime."""

    def __enter__(self) -> typing.Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        """Ignored, like :meth:`close`."""

    def _httpmgr_close(self) -> None:
        httpx.Client.close(self)


class ManagedAsyncClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` owned by a manager; ``aclose()`` from user code is ignored."""

    def __init__(self, settings: Settings, transport: AsyncPooledTransport) -> None:
        super().__init__(
            transport=transport,
            timeout=_timeout(settings),
            follow_redirects=settings.follow_redirects,
            trust_env=settings.trust_env,
        )
        self.httpmgr_settings = settings

    async def aclose(self) -> None:
        """Ignored: the manager owns this client's lifetime."""

    async def __aenter__(self) -> typing.Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        """Ignored, like :meth:`aclose`."""

    async def _httpmgr_aclose(self) -> None:
        await httpx.AsyncClient.aclose(self)
