"""The synchronous core every client kind reports through.

The per-kind adapters (``_httpx``, ``_aiohttp``) only observe their library and call
the methods below; the bookkeeping (which connection served which request, was it
reused, how long did the request wait) lives here once. The request being served is
carried in a context variable, so a connection wrapper can tell which request is
using it without any help from the client library.
"""

from __future__ import annotations

import itertools
import logging
import time
import weakref
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Protocol

from ._events import (
    ClientKind,
    CloseReason,
    ConnectFailed,
    ConnectionAcquired,
    ConnectionClosed,
    ConnectionOpened,
    Endpoint,
    Event,
    EventSink,
    RequestFinished,
    RequestRetried,
    RequestStarted,
    TLSHandshake,
)
from ._log import log_event
from ._names import LOG_TELEMETRY_FAILED

__all__ = ["Connection", "Exchange", "PoolView", "Probe", "current_exchange"]

_ids = itertools.count(1)


class Connection:
    """One TCP (+TLS) connection, as the probe sees it."""

    __slots__ = (
        "closed",
        "endpoint",
        "errored",
        "http_version",
        "id",
        "last_active",
        "opened_at",
        "peer_address",
        "peer_port",
        "requests",
        "server_closed",
        "tls_cipher",
        "tls_version",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        self.id = next(_ids)
        self.endpoint = endpoint
        self.opened_at = time.monotonic()
        self.last_active = self.opened_at
        self.requests = 0
        self.http_version: str | None = None
        self.peer_address: str | None = None
        self.peer_port: int | None = None
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self.server_closed = False
        self.errored = False
        self.closed = False


class Exchange:
    """One request from entering the client until it has its response headers."""

    __slots__ = (
        "announced",
        "assigned_at",
        "connection",
        "endpoint",
        "method",
        "queued",
        "received",
        "reused",
        "started",
    )

    def __init__(self, endpoint: Endpoint, method: str) -> None:
        self.endpoint = endpoint
        self.method = method
        self.started = time.monotonic()
        # when the pool gave this request a connection: the connect start of a new one
        self.assigned_at: float | None = None
        self.connection: Connection | None = None
        self.reused = False
        self.received = False  # any response byte read for this attempt
        self.queued = False  # the pool had no connection for it at first
        self.announced = False  # RequestStarted was emitted

    def restart(self) -> None:
        """Forget the failed attempt before a retry."""
        self.started = time.monotonic()
        self.assigned_at = None
        self.connection = None
        self.reused = False
        self.received = False
        self.queued = False


class PoolView(Protocol):
    """A pool the probe can read its occupancy from (at metric collection time)."""

    max_connections: int

    def snapshot(self) -> Iterable[tuple[Endpoint, str | None, bool]]:
        """One ``(endpoint, http_version, idle)`` per open connection."""
        ...


current_exchange: ContextVar[Exchange | None] = ContextVar("httpmgr_exchange", default=None)


class Probe:
    """Turns what an adapter observed into events for the sink (if any)."""

    __slots__ = ("_endpoints", "_failed", "kind", "managed", "pools", "sink")

    def __init__(
        self, kind: ClientKind, sink: EventSink | None = None, *, managed: bool = True
    ) -> None:
        self.kind: ClientKind = kind
        self.managed = managed  # False: a client httpmgr measures but did not build
        self.sink = sink
        self.pools: weakref.WeakSet[PoolView] = weakref.WeakSet()
        self._endpoints: dict[tuple[str, str, int | None], Endpoint] = {}
        self._failed = False

    def emit(self, event: Event) -> None:
        sink = self.sink
        if sink is None:
            return
        try:
            sink(event)
        except Exception as exc:
            # Telemetry must never break a request: report the first failure, then stay
            # quiet so a broken sink cannot flood the application's logs.
            if not self._failed:
                self._failed = True
                log_event(
                    logging.ERROR,
                    LOG_TELEMETRY_FAILED,
                    component="sink",
                    client=self.kind,
                    error=repr(exc),
                    exc_info=True,
                )

    def endpoint(self, scheme: str, host: str, port: int | None) -> Endpoint:
        key = (scheme, host, port)
        found = self._endpoints.get(key)
        if found is None:
            full_port = port if port is not None else (443 if scheme == "https" else 80)
            found = Endpoint(self.kind, scheme, host, full_port, self.managed)
            if len(self._endpoints) < 10_000:  # bounded, whatever the traffic
                self._endpoints[key] = found
        return found

    # -- connection set-up ------------------------------------------------------------

    def connected(self, endpoint: Endpoint, duration: float, peer: Any) -> Connection:
        conn = Connection(endpoint)
        conn.peer_address, conn.peer_port = _peer(peer)
        self.emit(ConnectionOpened(endpoint, conn.id, duration, conn.peer_address, conn.peer_port))
        return conn

    def connect_failed(self, endpoint: Endpoint, duration: float, exc: BaseException) -> None:
        self.emit(ConnectFailed(endpoint, duration, error_type(exc)))

    def tls_done(
        self,
        conn: Connection,
        duration: float | None,
        version: str | None,
        cipher: str | None,
        exc: BaseException | None = None,
    ) -> None:
        err = None if exc is None else error_type(exc)
        conn.tls_version, conn.tls_cipher = version, cipher
        self.emit(TLSHandshake(conn.endpoint, conn.id, duration, version, cipher, err))

    # -- requests ---------------------------------------------------------------------

    def request_started(self, exchange: Exchange, url: object) -> None:
        if self.sink is not None:
            exchange.announced = True
            self.emit(RequestStarted(exchange.endpoint, exchange.method, str(url)))

    def request_finished(self, exchange: Exchange, exc: BaseException | None) -> None:
        if exchange.announced:
            exchange.announced = False
            err = None if exc is None else error_type(exc)
            waited = None
            if exc is not None and exchange.queued and exchange.connection is None:
                waited = time.monotonic() - exchange.started
            self.emit(RequestFinished(exchange.endpoint, err, waited))

    def acquired(self, exchange: Exchange, conn: Connection, now: float) -> None:
        """``exchange`` starts using ``conn`` (first write of the request)."""
        exchange.connection = conn
        exchange.reused = conn.requests > 0
        idle = now - conn.last_active if exchange.reused else None
        conn.requests += 1
        conn.last_active = now
        if self.sink is None:
            return
        # A new connection was assigned when its connect began: set-up is not queue wait.
        assigned = now if exchange.assigned_at is None else exchange.assigned_at
        wait = max(0.0, assigned - exchange.started) if exchange.queued else 0.0
        self.emit(
            ConnectionAcquired(
                exchange.endpoint,
                conn.id,
                exchange.reused,
                wait,
                idle,
                conn.requests,
                conn.http_version,
                conn.peer_address,
                conn.peer_port,
                conn.tls_version,
                conn.tls_cipher,
                assigned,
            )
        )

    def retried(self, exchange: Exchange, reason: str) -> None:
        self.emit(RequestRetried(exchange.endpoint, exchange.method, reason))

    def closed(self, conn: Connection, reason: CloseReason) -> None:
        if conn.closed:
            return
        conn.closed = True
        lifetime = time.monotonic() - conn.opened_at
        self.emit(ConnectionClosed(conn.endpoint, conn.id, reason, lifetime, conn.requests))


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of an exception: its class name (a bounded set)."""
    return type(exc).__name__


def _peer(peer: Any) -> tuple[str | None, int | None]:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return None, None
