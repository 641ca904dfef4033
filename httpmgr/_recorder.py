"""The recorder: one synchronous sink that turns probe events into telemetry.

Shared by the three client kinds. Each event becomes metric points, attributes on the
current request span and child spans for connection set-up, and log events on the
``httpmgr`` logger. Instruments are created once; pool occupancy is read from the
pools themselves when metrics are collected. Nothing here raises into a request: the
probe that calls us swallows and reports (once) any error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _names as n
from ._events import (
    ConnectFailed,
    ConnectionAcquired,
    ConnectionClosed,
    ConnectionOpened,
    Endpoint,
    Event,
    RequestFinished,
    RequestRetried,
    RequestStarted,
    TLSHandshake,
)
from ._log import log_enabled, log_event
from ._probe import Probe
from ._redact import Redactor

__all__ = ["Recorder"]

Attrs = Mapping[str, Any]


def _wall_ns(monotonic: float) -> int:
    """A past ``time.monotonic()`` reading as wall-clock nanoseconds (for span times)."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


class Recorder:
    """Maps probe events to OpenTelemetry metrics and spans, and to log events.

    Args:
        probes: The probes whose pools are read for occupancy (a manager's ``probes``).
        meter_provider: Defaults to the global one.
        tracer_provider: Defaults to the global one.
        redactor: Redacts ``url.full`` on request spans.
        pool_wait_warning: Seconds of queue wait above which a request logs
            ``httpmgr.pool_wait_exceeded``.
    """

    def __init__(
        self,
        probes: Iterable[Probe],
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        redactor: Redactor | None = None,
        pool_wait_warning: float = 0.1,
    ) -> None:
        from . import __version__

        self.probes = list(probes)
        self.redactor = redactor or Redactor()
        self.pool_wait_warning = pool_wait_warning
        meter = metrics.get_meter(n.INSTRUMENTATION_SCOPE, __version__, meter_provider)
        self.tracer = trace.get_tracer(n.INSTRUMENTATION_SCOPE, __version__, tracer_provider)
        self._attrs: dict[tuple[Endpoint, str | None], dict[str, Any]] = {}
        self._seen_states: set[tuple[Endpoint, str | None, str]] = set()
        self._setup_spans: dict[int, trace.Span] = {}
        self._callback_failed = False
        # Per-request counts are kept here and read at collection time (observable
        # instruments): an SDK measurement per request costs far more than a dict update.
        self._lock = threading.Lock()
        self._requests: dict[tuple[Endpoint, str | None, bool], int] = {}
        self._active: dict[Endpoint, int] = {}

        meter.create_observable_up_down_counter(
            n.ACTIVE_REQUESTS,
            callbacks=[self._guard(self._observe_active)],
            unit="{request}",
            description="Requests in flight in the client.",
        )
        meter.create_observable_counter(
            n.REQUESTS,
            callbacks=[self._guard(self._observe_requests)],
            unit="{request}",
            description="Requests sent, by whether their connection was reused.",
        )
        self.connections_opened = meter.create_counter(
            n.CONNECTIONS_OPENED, unit="{connection}", description="TCP connections opened."
        )
        self.connect_duration = meter.create_histogram(
            n.CONNECT_DURATION,
            unit="s",
            description="Time to establish a TCP connection.",
            explicit_bucket_boundaries_advisory=n.SETUP_BUCKETS,
        )
        self.tls_handshakes = meter.create_counter(
            n.TLS_HANDSHAKES, unit="{handshake}", description="TLS handshakes, failed ones too."
        )
        self.tls_duration = meter.create_histogram(
            n.TLS_HANDSHAKE_DURATION,
            unit="s",
            description="Time of a successful TLS handshake.",
            explicit_bucket_boundaries_advisory=n.SETUP_BUCKETS,
        )
        self.time_in_queue = meter.create_histogram(
            n.TIME_IN_QUEUE,
            unit="s",
            description="Time a request waited for a free connection (0 if it did not).",
            explicit_bucket_boundaries_advisory=n.QUEUE_BUCKETS,
        )
        self.connection_duration = meter.create_histogram(
            n.CONNECTION_DURATION,
            unit="s",
            description="Lifetime of a connection, from connect to close.",
            explicit_bucket_boundaries_advisory=n.LIFETIME_BUCKETS,
        )
        self.retries = meter.create_counter(
            n.RETRIES, unit="{retry}", description="Requests sent again by httpmgr."
        )
        meter.create_observable_up_down_counter(
            n.OPEN_CONNECTIONS,
            callbacks=[self._guard(self._observe_open)],
            unit="{connection}",
            description="Open connections in the pool, by state (active or idle).",
        )
        meter.create_observable_gauge(
            n.POOL_MAX_CONNECTIONS,
            callbacks=[self._guard(self._observe_max)],
            unit="{connection}",
            description="The pool's limit of open connections.",
        )
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            RequestStarted: self._request_started,
            RequestFinished: self._request_finished,
            ConnectionOpened: self._connection_opened,
            ConnectFailed: self._connect_failed,
            TLSHandshake: self._tls_handshake,
            ConnectionAcquired: self._connection_acquired,
            ConnectionClosed: self._connection_closed,
            RequestRetried: self._request_retried,
        }

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    # -- attributes -------------------------------------------------------------------

    def attrs(self, endpoint: Endpoint, version: str | None = None) -> dict[str, Any]:
        """The shared attributes of every metric point (built once per endpoint)."""
        key = (endpoint, version)
        found = self._attrs.get(key)
        if found is None:
            found = {
                n.SERVER_ADDRESS: endpoint.host,
                n.SERVER_PORT: endpoint.port,
                n.URL_SCHEME: endpoint.scheme,
                n.CLIENT_KIND: endpoint.kind,
                n.CLIENT_MANAGED: endpoint.managed,
            }
            if version is not None:
                found[n.NETWORK_PROTOCOL_VERSION] = version
            self._attrs[key] = found
        return found

    # -- requests ---------------------------------------------------------------------

    def _request_started(self, e: RequestStarted) -> None:
        with self._lock:
            self._active[e.endpoint] = self._active.get(e.endpoint, 0) + 1
        if not ("?" in e.url or "@" in e.url or "#" in e.url):
            return  # nothing that redaction would change
        span = trace.get_current_span()
        if span.is_recording():
            attributes = getattr(span, "attributes", None) or {}
            # The HTTP instrumentations redact only a few parameters: redact ours too.
            for key in (n.URL_FULL, "http.url"):
                if key in attributes:
                    span.set_attribute(key, self.redactor.url(e.url))

    def _request_finished(self, e: RequestFinished) -> None:
        with self._lock:
            self._active[e.endpoint] -= 1
        if e.queue_wait is not None:  # it gave up waiting for a connection
            self.time_in_queue.record(
                e.queue_wait, {**self.attrs(e.endpoint), n.ERROR_TYPE: e.error_type}
            )

    def _request_retried(self, e: RequestRetried) -> None:
        self.retries.add(1, {**self.attrs(e.endpoint), n.RETRY_REASON: e.reason})
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event("httpmgr.request_retried", {n.RETRY_REASON: e.reason})
        log_event(
            logging.WARNING,
            n.LOG_REQUEST_RETRIED,
            **_where(e.endpoint),
            method=e.method,
            reason=e.reason,
        )

    def _connection_acquired(self, e: ConnectionAcquired) -> None:
        attrs = self.attrs(e.endpoint, e.http_version)
        key = (e.endpoint, e.http_version, e.reused)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
        self.time_in_queue.record(e.wait_time, attrs)
        setup = self._setup_spans.pop(e.connection_id, None)
        if setup is not None:  # plain HTTP: set-up ends with the TCP connect
            setup.end()
        span = trace.get_current_span()
        if span.is_recording():
            if e.wait_time > 0:
                end = _wall_ns(e.assigned_at)
                wait = self.tracer.start_span(
                    n.SPAN_WAIT_FOR_CONNECTION,
                    start_time=end - int(e.wait_time * 1e9),
                    attributes={n.POOL_WAIT_TIME: e.wait_time},
                )
                wait.end(end_time=end)
            if getattr(span, "kind", None) is SpanKind.CLIENT:
                span.set_attributes(_request_span_attributes(e))
        if log_enabled(logging.DEBUG):  # per request: build the event only when wanted
            log_event(
                logging.DEBUG,
                n.LOG_CONNECTION_REUSED if e.reused else n.LOG_CONNECTION_ACQUIRED,
                **_where(e.endpoint),
                connection_id=e.connection_id,
                reused=e.reused,
                request_count=e.request_count,
                wait_time=e.wait_time,
            )
        if e.wait_time >= self.pool_wait_warning:
            log_event(
                logging.WARNING,
                n.LOG_POOL_WAIT_EXCEEDED,
                **_where(e.endpoint),
                wait_time=e.wait_time,
                threshold=self.pool_wait_warning,
            )

    # -- connections ------------------------------------------------------------------

    def _connection_opened(self, e: ConnectionOpened) -> None:
        attrs = self.attrs(e.endpoint)
        self.connections_opened.add(1, attrs)
        self.connect_duration.record(e.connect_duration, attrs)
        if trace.get_current_span().is_recording():
            now = time.time_ns()
            start = now - int(e.connect_duration * 1e9)
            setup = self.tracer.start_span(
                f"{n.SPAN_CONNECTION_SETUP} {e.endpoint.host}:{e.endpoint.port}",
                start_time=start,
                attributes={
                    n.SERVER_ADDRESS: e.endpoint.host,
                    n.SERVER_PORT: e.endpoint.port,
                    n.CONNECTION_ID: e.connection_id,
                },
            )
            connect = self.tracer.start_span(
                n.SPAN_SOCKET_CONNECT,
                context=trace.set_span_in_context(setup),
                start_time=start,
                attributes=_peer_attributes(e.peer_address, e.peer_port),
            )
            connect.end(end_time=now)
            self._setup_spans[e.connection_id] = setup
        log_event(
            logging.INFO,
            n.LOG_CONNECTION_OPENED,
            **_where(e.endpoint),
            connection_id=e.connection_id,
            connect_duration=e.connect_duration,
        )

    def _connect_failed(self, e: ConnectFailed) -> None:
        self.connect_duration.record(
            e.duration, {**self.attrs(e.endpoint), n.ERROR_TYPE: e.error_type}
        )
        if trace.get_current_span().is_recording():
            now = time.time_ns()
            span = self.tracer.start_span(
                n.SPAN_SOCKET_CONNECT,
                start_time=now - int(e.duration * 1e9),
                attributes={n.ERROR_TYPE: e.error_type},
            )
            span.set_status(Status(StatusCode.ERROR, e.error_type))
            span.end(end_time=now)
        log_event(
            logging.WARNING,
            n.LOG_CONNECT_FAILED,
            **_where(e.endpoint),
            error_type=e.error_type,
            duration=e.duration,
        )

    def _tls_handshake(self, e: TLSHandshake) -> None:
        attrs = dict(self.attrs(e.endpoint))
        if e.protocol_version is not None:
            attrs[n.TLS_PROTOCOL_VERSION] = _tls_version(e.protocol_version)
        if e.error_type is not None:
            attrs[n.ERROR_TYPE] = e.error_type
        self.tls_handshakes.add(1, attrs)
        if e.duration is not None and e.error_type is None:
            self.tls_duration.record(e.duration, attrs)
        setup = self._setup_spans.pop(e.connection_id, None)
        if setup is not None:
            now = time.time_ns()
            if e.duration is not None:
                tls = self.tracer.start_span(
                    n.SPAN_TLS_HANDSHAKE,
                    context=trace.set_span_in_context(setup),
                    start_time=now - int(e.duration * 1e9),
                    attributes=_tls_attributes(e.protocol_version, e.cipher),
                )
                if e.error_type is not None:
                    tls.set_attribute(n.ERROR_TYPE, e.error_type)
                    tls.set_status(Status(StatusCode.ERROR, e.error_type))
                tls.end(end_time=now)
            if e.error_type is not None:
                setup.set_attribute(n.ERROR_TYPE, e.error_type)
                setup.set_status(Status(StatusCode.ERROR, e.error_type))
            setup.end(end_time=now)
        if e.error_type is not None:
            log_event(
                logging.WARNING,
                n.LOG_TLS_HANDSHAKE_FAILED,
                **_where(e.endpoint),
                connection_id=e.connection_id,
                error_type=e.error_type,
            )

    def _connection_closed(self, e: ConnectionClosed) -> None:
        attrs = {**self.attrs(e.endpoint), n.CLOSE_REASON: e.reason}
        self.connection_duration.record(e.lifetime, attrs)
        setup = self._setup_spans.pop(e.connection_id, None)
        if setup is not None:  # closed before it served a request
            setup.end()
        log_event(
            logging.INFO,
            n.LOG_CONNECTION_CLOSED,
            **_where(e.endpoint),
            connection_id=e.connection_id,
            reason=e.reason,
            lifetime=e.lifetime,
            requests=e.requests,
        )

    # -- observable instruments -------------------------------------------------------

    def _guard(
        self, callback: Callable[[], Iterable[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def guarded(options: CallbackOptions) -> Iterable[Observation]:
            try:
                return list(callback())
            except Exception as exc:
                if not self._callback_failed:
                    self._callback_failed = True
                    log_event(
                        logging.ERROR,
                        n.LOG_TELEMETRY_FAILED,
                        component="pool_snapshot",
                        error=repr(exc),
                        exc_info=True,
                    )
                return []

        return guarded

    def _observe_requests(self) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._requests.items())
        for (endpoint, version, reused), count in counts:
            yield Observation(count, {**self.attrs(endpoint, version), n.CONNECTION_REUSED: reused})

    def _observe_active(self) -> Iterable[Observation]:
        with self._lock:
            active = list(self._active.items())
        for endpoint, count in active:
            yield Observation(count, self.attrs(endpoint))

    def _observe_open(self) -> Iterable[Observation]:
        counts: dict[tuple[Endpoint, str | None, str], int] = {}
        for probe in self.probes:
            for pool in list(probe.pools):
                for endpoint, version, idle in pool.snapshot():
                    key = (endpoint, version, "idle" if idle else "active")
                    counts[key] = counts.get(key, 0) + 1
        self._seen_states.update(counts)
        for key in self._seen_states:  # report 0, not nothing, for a state now empty
            endpoint, version, state = key
            attrs = {**self.attrs(endpoint, version), n.CONNECTION_STATE: state}
            yield Observation(counts.get(key, 0), attrs)

    def _observe_max(self) -> Iterable[Observation]:
        for probe in self.probes:
            for pool in list(probe.pools):
                endpoints = {endpoint for endpoint, _, _ in pool.snapshot()}
                for endpoint in endpoints:
                    yield Observation(pool.max_connections, self.attrs(endpoint))


def _where(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "client": endpoint.kind,
        "server_address": endpoint.host,
        "server_port": endpoint.port,
        "url_scheme": endpoint.scheme,
    }


def _tls_version(version: str) -> str:
    """``TLSv1.3`` -> ``1.3`` (the semantic-convention form)."""
    return version.removeprefix("TLSv")


def _tls_attributes(version: str | None, cipher: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if version is not None:
        attrs[n.TLS_PROTOCOL_VERSION] = _tls_version(version)
    if cipher is not None:
        attrs[n.TLS_CIPHER] = cipher
    return attrs


def _peer_attributes(address: str | None, port: int | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if address is not None:
        attrs[n.NETWORK_PEER_ADDRESS] = address
    if port is not None:
        attrs[n.NETWORK_PEER_PORT] = port
    return attrs


def _request_span_attributes(e: ConnectionAcquired) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        n.CONNECTION_REUSED: e.reused,
        n.CONNECTION_ID: e.connection_id,
        n.CONNECTION_REQUEST_COUNT: e.request_count,
        n.POOL_WAIT_TIME: e.wait_time,
        **_peer_attributes(e.peer_address, e.peer_port),
        **_tls_attributes(e.tls_version, e.tls_cipher),
    }
    if e.idle_time is not None:
        attrs[n.CONNECTION_IDLE_TIME] = e.idle_time
    return attrs
