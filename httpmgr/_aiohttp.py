"""aiohttp adapters: a probed connector and a manager-owned session.

aiohttp reports queueing, connection creation and reuse through ``TraceConfig``
signals, but not which connection served a request nor when one closes. The
connector subclass below sees the connection each request gets (``connect()`` is the
public "get from pool or create" step) and watches its protocol's ``closed`` future.
All private aiohttp access is in this module.
"""

from __future__ import annotations

import asyncio
import time
import warnings
import weakref
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from ._events import CloseReason, Endpoint
from ._probe import Connection, Exchange, Probe, current_exchange
from ._retry import IDEMPOTENT_METHODS, RETRY_REASON, disconnect_message
from ._settings import Settings

__all__ = ["ManagedConnector", "ManagedSession", "ProbedConnector", "client_timeout", "connector"]


class ManagedConnector(aiohttp.TCPConnector):
    """The connector of a manager's sessions, built from its settings."""

    def __init__(self, settings: Settings, ssl_context: Any, probe: Probe) -> None:
        super().__init__(
            limit=settings.max_connections,
            limit_per_host=0,
            keepalive_timeout=settings.keepalive_expiry,
            ssl=ssl_context,
        )
        self.probe = probe
        self.max_connections = settings.max_connections
        self.keepalive_expiry = settings.keepalive_expiry
        self.httpmgr_closing = False

    async def close(self, *, abort_ssl: bool = False) -> None:
        self.httpmgr_closing = True
        await super().close(abort_ssl=abort_ssl)


def connector(settings: Settings, ssl_context: Any, probe: Probe) -> ManagedConnector:
    """A probed connector when telemetry is on, else a plain one: the probe's ``connect``
    wrapper is the only per-request cost, and without a sink it would report nothing."""
    cls = ProbedConnector if probe.sink is not None else ManagedConnector
    return cls(settings, ssl_context, probe)


class ProbedConnector(ManagedConnector):
    """``TCPConnector`` that reports connections opened, reused and closed to a probe."""

    def __init__(self, settings: Settings, ssl_context: Any, probe: Probe) -> None:
        super().__init__(settings, ssl_context, probe)
        self._known: weakref.WeakKeyDictionary[ResponseHandler, Connection] = (
            weakref.WeakKeyDictionary()
        )
        probe.pools.add(self)

    def snapshot(self) -> list[tuple[Endpoint, str | None, bool]]:
        """Open connections, read from the connector's private state (may be called from
        the metric reader's thread: the state is copied, and a collision retried)."""
        for _ in range(3):
            try:
                idle = {proto for conns in list(self._conns.values()) for proto, _ in conns}
                active = set(self._acquired) - idle
                break
            except RuntimeError:  # changed size during iteration
                continue
        else:  # pragma: no cover
            return []
        rows = []
        for protos, is_idle in ((active, False), (idle, True)):
            for proto in protos:
                conn = self._known.get(proto)
                if conn is not None and not conn.closed:
                    rows.append((conn.endpoint, conn.http_version, is_idle))
        return rows

    async def connect(self, req: Any, traces: Any, timeout: aiohttp.ClientTimeout) -> Any:
        exchange = current_exchange.get()
        t0 = time.monotonic()
        try:
            connection = await super().connect(req, traces, timeout)
        except Exception as exc:
            if exchange is not None and exchange.assigned_at is not None:
                self._report_failure(exchange, exc)
            raise
        if exchange is None:  # a request that did not come through a managed session
            return connection
        proto = connection.protocol
        conn = self._known.get(proto) if proto is not None else None
        now = time.monotonic()
        previous = exchange.connection
        if previous is not None and previous.closed and previous is not conn:
            # aiohttp itself re-sent an idempotent request whose kept-alive connection
            # had been dropped: count it like the httpx retry.
            self.probe.retried(exchange, RETRY_REASON)
            exchange.restart()
            exchange.assigned_at = now
        if conn is None and proto is not None:
            conn = self._opened(exchange, proto, now - (exchange.assigned_at or t0))
        if conn is not None:
            self.probe.acquired(exchange, conn, now)
        return connection

    def _opened(self, exchange: Exchange, proto: ResponseHandler, setup: float) -> Connection:
        transport = proto.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        conn = self.probe.connected(exchange.endpoint, setup, peer)
        self._known[proto] = conn
        conn.http_version = "1.1"  # aiohttp's client speaks HTTP/1.1 only
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            cipher = (ssl_object.cipher() or (None,))[0]
            # aiohttp makes the TCP connection and the handshake in one step: the
            # handshake's own duration is not observable here (None).
            self.probe.tls_done(conn, None, ssl_object.version(), cipher)
        closed = proto.closed
        if closed is not None:
            closed.add_done_callback(lambda fut: self._connection_closed(conn, fut))
        return conn

    def _connection_closed(self, conn: Connection, fut: asyncio.Future[None]) -> None:
        failed = not fut.cancelled() and fut.exception() is not None
        reason: CloseReason
        if self.httpmgr_closing:
            reason = "client_closed"
        elif failed:
            reason = "error"
        elif time.monotonic() - conn.last_active >= self.keepalive_expiry:
            reason = "idle_expired"
        else:
            reason = "server_closed"
        self.probe.closed(conn, reason)

    def _report_failure(self, exchange: Exchange, exc: BaseException) -> None:
        setup = time.monotonic() - (exchange.assigned_at or exchange.started)
        if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
            # TCP connected, TLS failed: a connection that never served a request.
            conn = self.probe.connected(exchange.endpoint, setup, None)
            self.probe.tls_done(conn, None, None, None, exc)
            self.probe.closed(conn, "error")
        else:
            self.probe.connect_failed(exchange.endpoint, setup, exc)


async def _on_assigned(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    exchange = current_exchange.get()
    if exchange is not None and exchange.assigned_at is None:
        exchange.assigned_at = time.monotonic()


async def _on_queued(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    exchange = current_exchange.get()
    if exchange is not None:
        exchange.queued = True


async def _on_request_start(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    # Runs after any OpenTelemetry trace config, so its request span is current.
    exchange = current_exchange.get()
    connector = session.connector
    if exchange is not None and isinstance(connector, ProbedConnector):
        connector.probe.request_started(exchange, params.url)


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_connection_queued_start.append(_on_queued)
    config.on_connection_create_start.append(_on_assigned)
    config.on_connection_reuseconn.append(_on_assigned)
    return config


def client_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    """httpx-like timeouts: each phase bounded, no total (a long download may go on)."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=settings.effective_pool_timeout,
        sock_connect=settings.effective_connect_timeout,
        sock_read=settings.timeout,
    )


# aiohttp warns against subclassing ClientSession because its internals may change.
# We override only close() (public) and wrap _request(), which every request method
# goes through; tests pin the behaviour on the aiohttp version we support.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)

    class ManagedSession(aiohttp.ClientSession):
        """An ``aiohttp.ClientSession`` owned by a manager.

        ``close()`` from user code (or leaving ``async with session:``) does nothing:
        other code shares the session. The manager closes it for real.
        """

        def __init__(
            self,
            settings: Settings,
            connector: ManagedConnector,
            trace_configs: Sequence[aiohttp.TraceConfig] = (),
        ) -> None:
            super().__init__(
                connector=connector,
                connector_owner=False,
                timeout=client_timeout(settings),
                # ours last: its on_request_start sees the span the others started. Only
                # with telemetry on: aiohttp's tracing costs every request, and what it
                # adds (queueing, request starts) only feeds telemetry.
                trace_configs=[*trace_configs, _trace_config()]
                if isinstance(connector, ProbedConnector)
                else list(trace_configs),
                # Environment proxies and .netrc are not applied to managed clients (as
                # for httpx); aiohttp would also look them up in a thread per request.
                trust_env=False,
            )

        async def close(self) -> None:
            """Ignored: the manager owns this session's lifetime."""

        async def _httpmgr_aclose(self) -> None:
            await aiohttp.ClientSession.close(self)

        async def _request(self, method: str, str_or_url: Any, **kwargs: Any) -> Any:
            connector = self.connector
            probe = connector.probe if isinstance(connector, ProbedConnector) else None
            if probe is None or probe.sink is None:  # telemetry off: out of the way
                try:
                    return await super()._request(method, str_or_url, **kwargs)
                except aiohttp.ServerDisconnectedError as exc:
                    if method.upper() not in IDEMPOTENT_METHODS:
                        raise _explained(method, str_or_url, exc) from exc
                    raise
            url = URL(str_or_url)
            exchange = Exchange(
                probe.endpoint(url.scheme, url.host or "", url.port), method.upper()
            )
            token = current_exchange.set(exchange)
            error: BaseException | None = None
            try:
                return await super()._request(method, str_or_url, **kwargs)
            except aiohttp.ServerDisconnectedError as exc:
                error = exc
                if exchange.method not in IDEMPOTENT_METHODS:
                    raise _explained(method, str_or_url, exc) from exc
                raise
            except BaseException as exc:
                error = exc
                raise
            finally:
                probe.request_finished(exchange, error)
                current_exchange.reset(token)


def _explained(method: str, url: Any, exc: BaseException) -> aiohttp.ServerDisconnectedError:
    """aiohttp does not repeat a non-idempotent request whose connection was dropped;
    say so (aiohttp's own message is just "Server disconnected")."""
    return aiohttp.ServerDisconnectedError(disconnect_message(method.upper(), URL(url), exc))
