"""Set up the OpenTelemetry SDK from the standard ``OTEL_*`` variables, for HTTPMGR_TELEMETRY=1.

Only when the application has not installed providers of its own: those are then used
as they are. Exporting happens on background threads (batch span processor, periodic
metric reader), so an exporter that is down or slow never delays a request.

Variables: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_EXPORTER``
and ``OTEL_METRICS_EXPORTER`` (comma-separated; otlp, console, none, and prometheus for
metrics), ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default ``http://localhost:4318``) and the
other ``OTEL_EXPORTER_OTLP_*`` variables the OTLP/HTTP exporters read,
``OTEL_EXPORTER_OTLP_PROTOCOL`` (http/protobuf only), ``OTEL_METRIC_EXPORT_INTERVAL``,
``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT`` (default localhost:9464).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Protocol

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from ._settings import SettingsError

__all__ = ["install_sdk"]

_log = logging.getLogger("httpmgr")

# At exit, flushing waits this long at most: the SDK's own exit handler would retry a
# collector that is down for up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s) per signal.
EXIT_FLUSH_TIMEOUT = 3.0

_TRACE_EXPORTERS = ("otlp", "console", "none")
_METRIC_EXPORTERS = ("otlp", "prometheus", "console", "none")


def _choices(environ: Mapping[str, str], var: str, accepted: tuple[str, ...]) -> list[str]:
    raw = environ.get(var, "otlp")
    names = [part.strip().lower() for part in raw.split(",") if part.strip()] or ["otlp"]
    for name in names:
        if name not in accepted:
            raise SettingsError(
                f"{var}={raw!r} is not valid: expected a comma-separated list of "
                f"{', '.join(accepted)}"
            )
    return [name for name in names if name != "none"]


def _check_protocol(environ: Mapping[str, str]) -> None:
    for var in (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ):
        raw = environ.get(var)
        if raw is not None and raw.strip() != "http/protobuf":
            raise SettingsError(
                f"{var}={raw!r} is not valid: expected http/protobuf (httpmgr exports "
                "OTLP over HTTP)"
            )


def _sdk_installed() -> tuple[bool, bool]:
    """Whether the application already installed a tracer / meter provider."""
    tracer = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    meter = type(metrics.get_meter_provider()).__name__ not in {
        "_ProxyMeterProvider",
        "NoOpMeterProvider",
    }
    return tracer, meter


def _span_exporter(name: str) -> SpanExporter:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


def _metric_reader(name: str, environ: Mapping[str, str]) -> MetricReader | None:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return PeriodicExportingMetricReader(OTLPMetricExporter())
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    host = environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
    raw_port = environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
    try:
        port = int(raw_port)
    except ValueError:
        raise SettingsError(
            f"OTEL_EXPORTER_PROMETHEUS_PORT={raw_port!r} is not valid: expected a port number"
        ) from None
    try:
        start_http_server(port=port, addr=host)
    except OSError as exc:
        # Telemetry must not stop the application: say so loudly and go on without it.
        # A warning, not a log line: httpmgr's logger is silent unless configured, and
        # this is a set-up mistake the operator must see.
        warnings.warn(
            f"httpmgr: cannot serve Prometheus metrics on {host}:{port} ({exc}); "
            "metrics are not exported (OTEL_EXPORTER_PROMETHEUS_PORT)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return PrometheusMetricReader()


def install_sdk(environ: Mapping[str, str]) -> None:
    """Install SDK providers from ``OTEL_*`` variables where the app has none."""
    has_tracer, has_meter = _sdk_installed()
    if has_tracer and has_meter:
        return
    _check_protocol(environ)
    span_exporters = _choices(environ, "OTEL_TRACES_EXPORTER", _TRACE_EXPORTERS)
    metric_exporters = _choices(environ, "OTEL_METRICS_EXPORTER", _METRIC_EXPORTERS)
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    installed: list[_Shutdown] = []
    if not has_tracer:
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        for name in span_exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(name)))
        trace.set_tracer_provider(tracer_provider)
        installed.append(tracer_provider)
    if not has_meter:
        readers = [_metric_reader(name, environ) for name in metric_exporters]
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[r for r in readers if r], shutdown_on_exit=False
        )
        metrics.set_meter_provider(meter_provider)
        installed.append(meter_provider)
    atexit.register(_shutdown, installed, EXIT_FLUSH_TIMEOUT)


class _Shutdown(Protocol):
    def shutdown(self) -> object: ...


def _shutdown(providers: list[_Shutdown], timeout: float) -> None:
    """Flush and shut the providers down side by side, waiting ``timeout`` at most."""
    threads = [
        threading.Thread(target=p.shutdown, name="httpmgr-otel-shutdown", daemon=True)
        for p in providers
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        _log.warning(
            "httpmgr: telemetry not flushed within %.0f s at exit (is the collector down?)",
            timeout,
        )
