"""Switching telemetry on: by code, by environment variable, or by ``opentelemetry-instrument``.

- ``httpmgr.telemetry.instrument()`` records the default manager's connection events
  with the global (or given) OpenTelemetry providers, and gives every managed client
  request spans from opentelemetry-instrumentation-httpx / -aiohttp-client.
- ``HTTPMGR_TELEMETRY=1 python app.py`` does the same with no code change, first setting
  up the OpenTelemetry SDK from the standard ``OTEL_*`` variables, unless the application
  has installed providers of its own, which are then used as they are.
- ``opentelemetry-instrument python app.py`` loads :class:`HttpmgrInstrumentor` through
  the ``opentelemetry_instrumentor`` entry point named ``httpmgr``.

Needs the ``otel`` extra.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import aiohttp
import httpx
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from ._every_client import EveryClient
from ._manager import HttpClientManager
from ._recorder import Recorder
from ._redact import SENSITIVE_HEADERS, Redactor
from ._settings import SettingsError

__all__ = ["HttpmgrInstrumentor", "configure_from_env", "instrument", "uninstrument"]

_log = logging.getLogger("httpmgr")

# The OpenTelemetry HTTP instrumentations emit the stable conventions (url.full,
# http.request.method, durations in seconds) only when asked, and read the choice once
# per process: ask as early as possible, unless the application chose otherwise.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

TELEMETRY_VAR = "HTTPMGR_TELEMETRY"
ALL_CLIENTS_VAR = "HTTPMGR_TELEMETRY_ALL_CLIENTS"
_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})
_SANITIZE_VAR = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"


class _RequestSpans:
    """Request spans and ``http.client.request.duration`` from the contrib instrumentations,
    on managed clients only, unless the application instrumented the libraries globally."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        from opentelemetry.instrumentation._semconv import (
            _OpenTelemetrySemanticConventionStability,
            _OpenTelemetryStabilitySignalType,
        )

        existing = os.environ.get(_SANITIZE_VAR, "")
        os.environ[_SANITIZE_VAR] = ",".join(filter(None, [existing, *SENSITIVE_HEADERS]))
        _OpenTelemetrySemanticConventionStability._initialize()  # type: ignore[no-untyped-call]
        self.semconv_mode = (
            _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
                _OpenTelemetryStabilitySignalType.HTTP
            )
        )
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def httpx_client(self, client: httpx.Client | httpx.AsyncClient, new_pool: bool) -> None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        # Clients sharing a pool share its transport, whose handle_request the
        # instrumentation wraps: wrap it once. A global instrument() covers it already.
        if new_pool and not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
            HTTPXClientInstrumentor.instrument_client(
                client, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
            )

    def aiohttp_trace_configs(self) -> Sequence[aiohttp.TraceConfig]:
        from opentelemetry.instrumentation.aiohttp_client import (
            AioHttpClientInstrumentor,
            create_trace_config,
        )

        if AioHttpClientInstrumentor().is_instrumented_by_opentelemetry:
            return ()  # it adds its trace config to every new session itself
        return (
            create_trace_config(
                tracer_provider=self.tracer_provider,
                meter_provider=self.meter_provider,
                sem_conv_opt_in_mode=self.semconv_mode,
                sensitive_headers=list(SENSITIVE_HEADERS),
            ),
        )


def instrument(
    manager: HttpClientManager | None = None,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    request_spans: bool = True,
    pool_wait_warning: float = 0.1,
    all_clients: bool | None = None,
) -> Recorder:
    """Record ``manager``'s connection telemetry (the default manager if None).

    Idempotent: a manager already instrumented keeps its recorder. Clients created
    before this call report connection metrics, but get no request spans.

    Args:
        tracer_provider: Defaults to the global provider.
        meter_provider: Defaults to the global provider.
        request_spans: Also give managed clients request spans and
            ``http.client.request.duration`` from the OpenTelemetry HTTP instrumentations.
        pool_wait_warning: Queue wait (s) above which ``httpmgr.pool_wait_exceeded`` is logged.
        all_clients: Also measure every httpx client the process builds from now on,
            managed or not (``httpmgr.client.managed=false`` on those). ``None``: as the
            ``HTTPMGR_TELEMETRY_ALL_CLIENTS`` variable says (off when unset).
    """
    if manager is None:
        from ._api import default_manager

        manager = default_manager()
    if isinstance(manager.sink, Recorder):
        return manager.sink
    if all_clients is None:
        all_clients = _flag(os.environ, ALL_CLIENTS_VAR)
    recorder = Recorder(
        manager.probes.values(),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        redactor=Redactor(manager.settings().sensitive_query_params),
        pool_wait_warning=pool_wait_warning,
    )
    if request_spans:
        manager.hooks = _RequestSpans(tracer_provider, meter_provider)
    manager.set_sink(recorder)
    if all_clients:
        _enable_every_client(recorder)
    return recorder


_every_client: EveryClient | None = None


def _enable_every_client(recorder: Recorder) -> None:
    global _every_client
    if _every_client is None:
        _every_client = EveryClient(recorder)
        _every_client.enable()
    else:  # one patch per process: the latest recorder receives the events
        for probe in _every_client.probes.values():
            probe.sink = recorder
    recorder.probes.extend(_every_client.probes.values())


def _disable_every_client() -> None:
    global _every_client
    if _every_client is not None:
        _every_client.disable()
        _every_client = None


def uninstrument(manager: HttpClientManager | None = None) -> None:
    """Stop recording (request spans already attached to clients stay)."""
    if manager is None:
        from ._api import default_manager

        manager = default_manager()
    if isinstance(manager.sink, Recorder) and _every_client is not None:
        _disable_every_client()
    manager.set_sink(None)
    manager.hooks = None


def _flag(environ: Mapping[str, str], var: str) -> bool:
    raw = environ.get(var, "")
    value = raw.strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise SettingsError(
        f"{var}={raw!r} is not valid: expected one of 1, 0, true, false, yes, no, on, off"
    )


def telemetry_requested(environ: Mapping[str, str]) -> bool:
    """Whether ``HTTPMGR_TELEMETRY`` asks for telemetry; a clear error for a bad value."""
    return _flag(environ, TELEMETRY_VAR)


def configure_from_env(
    manager: HttpClientManager, environ: Mapping[str, str] | None = None
) -> Recorder | None:
    """The ``HTTPMGR_TELEMETRY=1`` path: SDK from ``OTEL_*`` variables, then instrument."""
    environ = os.environ if environ is None else environ
    if not telemetry_requested(environ):
        return None
    from ._sdk import install_sdk

    all_clients = _flag(environ, ALL_CLIENTS_VAR)
    install_sdk(environ)
    return instrument(manager, all_clients=all_clients)


class HttpmgrInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Loaded by ``opentelemetry-instrument`` (entry point ``httpmgr``); idempotent."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("httpx >= 0.28",)

    def _instrument(self, **kwargs: Any) -> None:
        instrument(
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        uninstrument()
