"""Every telemetry name httpmgr emits: metrics, attributes, spans, log events.

Names are an API (dashboards and alerts query them): change them only with a
changelog entry, and keep docs/telemetry.md in step. OpenTelemetry semantic
convention names are used where one exists; our own start with ``httpmgr.``.
"""

from __future__ import annotations

from typing import Final

INSTRUMENTATION_SCOPE: Final = "httpmgr"

# -- metrics ----------------------------------------------------------------------------
OPEN_CONNECTIONS: Final = "http.client.open_connections"
CONNECTION_DURATION: Final = "http.client.connection.duration"
TIME_IN_QUEUE: Final = "http.client.request.time_in_queue"
ACTIVE_REQUESTS: Final = "http.client.active_requests"
REQUESTS: Final = "httpmgr.client.requests"
CONNECTIONS_OPENED: Final = "httpmgr.client.connections.opened"
CONNECT_DURATION: Final = "httpmgr.client.connect.duration"
TLS_HANDSHAKES: Final = "httpmgr.client.tls.handshakes"
TLS_HANDSHAKE_DURATION: Final = "httpmgr.client.tls.handshake.duration"
POOL_MAX_CONNECTIONS: Final = "httpmgr.client.pool.max_connections"
RETRIES: Final = "httpmgr.client.retries"

# Histogram buckets in seconds (the SDK's defaults are meant for milliseconds).
SETUP_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
QUEUE_BUCKETS: Final = (
    0.0, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
LIFETIME_BUCKETS: Final = (
    0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip

# -- attributes -------------------------------------------------------------------------
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
URL_SCHEME: Final = "url.scheme"
URL_FULL: Final = "url.full"
NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"
NETWORK_PEER_ADDRESS: Final = "network.peer.address"
NETWORK_PEER_PORT: Final = "network.peer.port"
CONNECTION_STATE: Final = "http.connection.state"
ERROR_TYPE: Final = "error.type"
TLS_PROTOCOL_VERSION: Final = "tls.protocol.version"
TLS_CIPHER: Final = "tls.cipher"
CLIENT_KIND: Final = "httpmgr.client"
CLIENT_MANAGED: Final = "httpmgr.client.managed"
CLOSE_REASON: Final = "httpmgr.close.reason"
RETRY_REASON: Final = "httpmgr.retry.reason"
CONNECTION_REUSED: Final = "httpmgr.connection.reused"
CONNECTION_ID: Final = "httpmgr.connection.id"
CONNECTION_REQUEST_COUNT: Final = "httpmgr.connection.request_count"
CONNECTION_IDLE_TIME: Final = "httpmgr.connection.idle_time"
POOL_WAIT_TIME: Final = "httpmgr.pool.wait_time"

# -- spans (the names .NET 9 uses for the same phases) ----------------------------------
SPAN_CONNECTION_SETUP: Final = "HTTP connection_setup"  # + " {host}:{port}"
SPAN_SOCKET_CONNECT: Final = "socket connect"
SPAN_TLS_HANDSHAKE: Final = "TLS client handshake"
SPAN_WAIT_FOR_CONNECTION: Final = "HTTP wait_for_connection"

# -- log events -------------------------------------------------------------------------
LOG_CONNECTION_OPENED: Final = "httpmgr.connection_opened"
LOG_CONNECTION_CLOSED: Final = "httpmgr.connection_closed"
LOG_CONNECTION_ACQUIRED: Final = "httpmgr.connection_acquired"  # DEBUG, per request
LOG_CONNECTION_REUSED: Final = "httpmgr.connection_reused"  # DEBUG, per request
LOG_CONNECT_FAILED: Final = "httpmgr.connect_failed"
LOG_TLS_HANDSHAKE_FAILED: Final = "httpmgr.tls_handshake_failed"
LOG_POOL_WAIT_EXCEEDED: Final = "httpmgr.pool_wait_exceeded"
LOG_REQUEST_RETRIED: Final = "httpmgr.request_retried"
LOG_CLIENT_CREATED: Final = "httpmgr.client_created"
LOG_CLIENT_CLOSED: Final = "httpmgr.client_closed"
LOG_CLIENT_RECREATED: Final = "httpmgr.client_recreated"
LOG_TELEMETRY_FAILED: Final = "httpmgr.telemetry_failed"
