"""Neutral, frozen events the probes emit, one class per thing that happened.

Every client kind (httpx sync, httpx async, aiohttp) reports through these same
classes, so whatever consumes them (the telemetry recorder, a test) needs no
knowledge of the client library. New fields may be added; fields are never removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "ClientClosed",
    "ClientCreated",
    "ClientKind",
    "ClientRecreated",
    "CloseReason",
    "ConnectFailed",
    "ConnectionAcquired",
    "ConnectionClosed",
    "ConnectionOpened",
    "Endpoint",
    "Event",
    "EventSink",
    "RequestFinished",
    "RequestRetried",
    "RequestStarted",
    "TLSHandshake",
]

ClientKind = Literal["httpx", "httpx_async", "aiohttp"]

# Why a connection ended. A bounded set: it becomes a metric attribute.
CloseReason = Literal[
    "server_closed",  # the peer closed it (EOF, or "Connection: close")
    "idle_expired",  # kept idle longer than keepalive_expiry
    "error",  # a read or write on it failed
    "client_closed",  # the client or its pool was closed
    "evicted",  # closed by the pool for another reason (pool full of idle ones, ...)
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a connection goes: the only per-target data telemetry may carry."""

    kind: ClientKind
    scheme: str
    host: str
    port: int
    managed: bool = True  # False for clients httpmgr measures but did not create


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    endpoint: Endpoint
    connection_id: int
    connect_duration: float
    peer_address: str | None
    peer_port: int | None


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    endpoint: Endpoint
    duration: float
    error_type: str


@dataclass(frozen=True, slots=True)
class TLSHandshake:
    endpoint: Endpoint
    connection_id: int
    duration: float | None  # None where the library does TCP and TLS in one step
    protocol_version: str | None
    cipher: str | None
    error_type: str | None  # None when it succeeded


@dataclass(frozen=True, slots=True)
class ConnectionAcquired:
    """A request got a connection: a new one, or a kept-alive one (``reused``)."""

    endpoint: Endpoint
    connection_id: int
    reused: bool
    # seconds the request waited in the pool's queue for a connection (0 if it did not)
    wait_time: float
    idle_time: float | None  # seconds the reused connection had been idle
    request_count: int  # this request is the nth on the connection
    http_version: str | None
    peer_address: str | None
    peer_port: int | None
    tls_version: str | None
    tls_cipher: str | None
    assigned_at: float  # time.monotonic() when the connection was assigned


@dataclass(frozen=True, slots=True)
class RequestStarted:
    """A request entered a managed client. ``url`` is raw: never record it unredacted."""

    endpoint: Endpoint
    method: str
    url: str


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """The request got its response headers (``error_type`` None) or failed."""

    endpoint: Endpoint
    error_type: str | None
    # seconds it waited in the pool's queue when it failed there (PoolTimeout), else None
    queue_wait: float | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    endpoint: Endpoint
    connection_id: int
    reason: CloseReason
    lifetime: float
    requests: int


@dataclass(frozen=True, slots=True)
class RequestRetried:
    endpoint: Endpoint
    method: str
    reason: str  # "stale_connection"


@dataclass(frozen=True, slots=True)
class ClientCreated:
    kind: ClientKind
    pool_id: int


@dataclass(frozen=True, slots=True)
class ClientClosed:
    kind: ClientKind
    pool_id: int


@dataclass(frozen=True, slots=True)
class ClientRecreated:
    kind: ClientKind
    pool_id: int
    reason: str  # "closed_by_user"


Event = (
    RequestStarted
    | RequestFinished
    | ConnectionOpened
    | ConnectFailed
    | TLSHandshake
    | ConnectionAcquired
    | ConnectionClosed
    | RequestRetried
    | ClientCreated
    | ClientClosed
    | ClientRecreated
)


class EventSink(Protocol):
    """Receives every event, synchronously, on the thread that caused it."""

    def __call__(self, event: Event, /) -> None: ...
