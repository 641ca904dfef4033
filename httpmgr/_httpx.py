"""httpx adapters: a probed httpcore network backend, pooled transports, managed clients.

httpcore's trace extension never reports a connection closing and cannot say which
connection served a request, so we wrap the network backend instead: it sees every
connect, TLS handshake, read, write and close, with timings. All private httpx /
httpcore access is in this module.
"""

from __future__ import annotations

import ssl
import time
import typing
from types import TracebackType

import httpcore
import httpx

from ._events import Endpoint
from ._probe import Connection, Exchange, Probe, current_exchange
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


class _ConnState:
    """What both stream wrappers share: the probe's view of one connection."""

    __slots__ = ("backend", "conn")

    def __init__(self, backend: _BackendState, conn: Connection) -> None:
        self.backend = backend
        self.conn = conn

    def on_write(self) -> None:
        exchange = current_exchange.get()
        if exchange is not None and exchange.connection is not self.conn:
            self.backend.probe.acquired(exchange, self.conn, time.monotonic())

    def on_read(self, data: bytes) -> None:
        self.conn.last_active = time.monotonic()
        if data:
            exchange = current_exchange.get()
            if exchange is not None:
                exchange.received = True
        else:
            self.conn.server_closed = True

    def on_close(self, readable: bool) -> None:
        conn = self.conn
        if conn.errored:
            reason: typing.Any = "error"
        elif conn.server_closed or readable:
            reason = "server_closed"
        elif self.backend.closing:
            reason = "client_closed"
        elif time.monotonic() - conn.last_active >= self.backend.keepalive_expiry:
            reason = "idle_expired"
        else:
            reason = "evicted"
        self.backend.probe.closed(conn, reason)

    def on_tls(self, t0: float, stream: typing.Any, exc: BaseException | None) -> None:
        duration = time.monotonic() - t0
        if exc is not None:
            self.conn.errored = True
            self.backend.probe.tls_done(self.conn, duration, None, None, exc)
            return
        ssl_object = stream.get_extra_info("ssl_object")
        version = cipher = None
        if ssl_object is not None:
            version = ssl_object.version()
            cipher = (ssl_object.cipher() or (None,))[0]
            alpn = ssl_object.selected_alpn_protocol()
            self.conn.http_version = "2" if alpn == "h2" else "1.1"
        self.backend.probe.tls_done(self.conn, duration, version, cipher)


class _BackendState:
    """Shared by the sync and async backends: probe, expiry, and whether we are closing."""

    __slots__ = ("closing", "keepalive_expiry", "probe", "scheme_of")

    def __init__(self, probe: Probe, keepalive_expiry: float) -> None:
        self.probe = probe
        self.keepalive_expiry = keepalive_expiry
        self.closing = False

    def begin_connect(self, host: str, port: int) -> tuple[float, Exchange | None]:
        t0 = time.monotonic()
        exchange = current_exchange.get()
        if exchange is not None and exchange.assigned_at is None:
            exchange.assigned_at = t0
        return t0, exchange

    def endpoint(self, exchange: Exchange | None, host: str, port: int) -> typing.Any:
        if exchange is not None:
            return exchange.endpoint
        return self.probe.endpoint("https" if port == 443 else "http", host, port)


# --- sync ------------------------------------------------------------------------------


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, state: _ConnState) -> None:
        self._inner = inner
        self._state = state

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data = self._inner.read(max_bytes, timeout)
        except Exception:
            self._state.conn.errored = True
            raise
        self._state.on_read(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._state.on_write()
        try:
            self._inner.write(buffer, timeout)
        except Exception:
            self._state.conn.errored = True
            raise

    def close(self) -> None:
        readable = not self._state.conn.errored and bool(self._inner.get_extra_info("is_readable"))
        try:
            self._inner.close()
        finally:
            self._state.on_close(readable)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        t0 = time.monotonic()
        try:
            stream = self._inner.start_tls(ssl_context, server_hostname, timeout)
        except Exception as exc:
            self._state.on_tls(t0, None, exc)
            raise
        self._state.on_tls(t0, stream, None)
        return _Stream(stream, self._state)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, state: _BackendState) -> None:
        self._inner = httpcore.SyncBackend()
        self.state = state

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        t0, exchange = self.state.begin_connect(host, port)
        endpoint = self.state.endpoint(exchange, host, port)
        try:
            stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        except Exception as exc:
            self.state.probe.connect_failed(endpoint, time.monotonic() - t0, exc)
            raise
        conn = self.state.probe.connected(
            endpoint, time.monotonic() - t0, stream.get_extra_info("server_addr")
        )
        return _Stream(stream, _ConnState(self.state, conn))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# --- async -----------------------------------------------------------------------------


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, state: _ConnState) -> None:
        self._inner = inner
        self._state = state

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data = await self._inner.read(max_bytes, timeout)
        except Exception:
            self._state.conn.errored = True
            raise
        self._state.on_read(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._state.on_write()
        try:
            await self._inner.write(buffer, timeout)
        except Exception:
            self._state.conn.errored = True
            raise

    async def aclose(self) -> None:
        readable = not self._state.conn.errored and bool(self._inner.get_extra_info("is_readable"))
        try:
            await self._inner.aclose()
        finally:
            self._state.on_close(readable)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        t0 = time.monotonic()
        try:
            stream = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        except Exception as exc:
            self._state.on_tls(t0, None, exc)
            raise
        self._state.on_tls(t0, stream, None)
        return _AsyncStream(stream, self._state)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, state: _BackendState) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.state = state

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        t0, exchange = self.state.begin_connect(host, port)
        endpoint = self.state.endpoint(exchange, host, port)
        try:
            stream = await self._inner.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        except Exception as exc:
            self.state.probe.connect_failed(endpoint, time.monotonic() - t0, exc)
            raise
        conn = self.state.probe.connected(
            endpoint, time.monotonic() - t0, stream.get_extra_info("server_addr")
        )
        return _AsyncStream(stream, _ConnState(self.state, conn))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


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


def _begin(probe: Probe, request: httpx.Request) -> Exchange:
    url = request.url
    exchange = Exchange(probe.endpoint(url.scheme, url.host, url.port), request.method)
    request.extensions[_EXCHANGE] = exchange
    probe.request_started(exchange, url)
    return exchange


def _note_response(exchange: Exchange, response: httpx.Response) -> httpx.Response:
    if exchange.connection is not None and response.headers.get("connection", "").lower() == (
        "close"
    ):
        exchange.connection.server_closed = True  # the server asked for it
    return response


def _end(
    probe: Probe, exchange: Exchange, request: httpx.Request, error: BaseException | None
) -> None:
    request.extensions.pop(_EXCHANGE, None)
    probe.request_finished(exchange, error)


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
        self.backend_state = _BackendState(probe, settings.keepalive_expiry)
        self.max_connections = settings.max_connections
        self._pool = _Pool(
            **_pool_kwargs(settings, ssl_context), network_backend=_Backend(self.backend_state)
        )
        probe.pools.add(self)

    def snapshot(self) -> list[tuple[Endpoint, str | None, bool]]:
        return _snapshot(self.probe, self._pool.connections)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        exchange = _begin(self.probe, request)
        token = current_exchange.set(exchange)
        error: BaseException | None = None
        try:
            for attempt in (0, 1):
                try:
                    return _note_response(exchange, super().handle_request(request))
                except _STALE_ERRORS as exc:
                    decision = decide(
                        exchange,
                        replayable=_replayable(request),
                        attempt=attempt,
                        enabled=self.settings.retry_stale,
                    )
                    if decision is StaleDecision.RAISE:
                        raise
                    if decision is StaleDecision.EXPLAIN:
                        raise type(exc)(stale_message(exchange, exc), request=request) from exc
                    self.probe.retried(exchange, RETRY_REASON)
                    exchange.restart()
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(self.probe, exchange, request, error)
            current_exchange.reset(token)

    def close(self) -> None:
        self.backend_state.closing = True
        super().close()


class AsyncPooledTransport(httpx.AsyncHTTPTransport):
    """The async twin of :class:`PooledTransport`."""

    def __init__(self, settings: Settings, ssl_context: ssl.SSLContext, probe: Probe) -> None:
        super().__init__(verify=ssl_context, http2=settings.http2)
        self.settings = settings
        self.probe = probe
        self.backend_state = _BackendState(probe, settings.keepalive_expiry)
        self.max_connections = settings.max_connections
        self._pool = _AsyncPool(
            **_pool_kwargs(settings, ssl_context),
            network_backend=_AsyncBackend(self.backend_state),
        )
        probe.pools.add(self)

    def snapshot(self) -> list[tuple[Endpoint, str | None, bool]]:
        return _snapshot(self.probe, self._pool.connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange = _begin(self.probe, request)
        token = current_exchange.set(exchange)
        error: BaseException | None = None
        try:
            for attempt in (0, 1):
                try:
                    return _note_response(exchange, await super().handle_async_request(request))
                except _STALE_ERRORS as exc:
                    decision = decide(
                        exchange,
                        replayable=_replayable(request),
                        attempt=attempt,
                        enabled=self.settings.retry_stale,
                    )
                    if decision is StaleDecision.RAISE:
                        raise
                    if decision is StaleDecision.EXPLAIN:
                        raise type(exc)(stale_message(exchange, exc), request=request) from exc
                    self.probe.retried(exchange, RETRY_REASON)
                    exchange.restart()
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(self.probe, exchange, request, error)
            current_exchange.reset(token)

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
