"""The probed httpcore network backend: every connect, TLS handshake, read, write and
close of an httpx connection, with timings, reported to a probe.

httpcore's trace extension never reports a connection closing and cannot say which
connection served a request; the network backend sees both.
"""

from __future__ import annotations

import ssl
import time
import typing

import httpcore

from ._events import CloseReason, Endpoint
from ._probe import Connection, Exchange, Probe, current_exchange

__all__ = ["AsyncProbedBackend", "BackendState", "ProbedBackend"]


class _ConnState:
    """What both stream wrappers share: the probe's view of one connection."""

    __slots__ = ("backend", "conn")

    def __init__(self, backend: BackendState, conn: Connection) -> None:
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
        reason: CloseReason
        if conn.errored:
            reason = "error"
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


class BackendState:
    """Shared by the sync and async backends: probe, expiry, and whether we are closing."""

    __slots__ = ("closing", "keepalive_expiry", "probe")

    def __init__(self, probe: Probe, keepalive_expiry: float) -> None:
        self.probe = probe
        self.keepalive_expiry = keepalive_expiry
        self.closing = False

    def begin_connect(self) -> tuple[float, Exchange | None]:
        t0 = time.monotonic()
        exchange = current_exchange.get()
        if exchange is not None and exchange.assigned_at is None:
            exchange.assigned_at = t0
        return t0, exchange

    def endpoint(self, exchange: Exchange | None, host: str, port: int) -> Endpoint:
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


class ProbedBackend(httpcore.NetworkBackend):
    def __init__(self, state: BackendState) -> None:
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
        t0, exchange = self.state.begin_connect()
        endpoint = self.state.endpoint(exchange, host, port)
        try:
            stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        except Exception as exc:
            self.state.probe.connect_failed(endpoint, time.monotonic() - t0, exc)
            raise
        conn = self.state.probe.connected(
            endpoint, time.monotonic() - t0, stream.get_extra_info("server_addr")
        )
        conn.http_version = "1.1"  # until ALPN says otherwise
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


class AsyncProbedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, state: BackendState) -> None:
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
        t0, exchange = self.state.begin_connect()
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
        conn.http_version = "1.1"  # until ALPN says otherwise
        return _AsyncStream(stream, _ConnState(self.state, conn))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
