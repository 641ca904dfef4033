"""Log events (structlog), redaction, and the opentelemetry-instrument entry point."""

from __future__ import annotations

import importlib.metadata
import json
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import quote

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from httpmgr import HttpClientManager, RedactURLs, add_trace_context
from httpmgr import _names as n
from httpmgr._redact import Redactor
from httpmgr.testing import HTTPSTestServer

from .drivers import Driver
from .otel import Telemetry


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured
    structlog.reset_defaults()


def test_connection_lifecycle_is_logged_with_trace_context(
    driver: Driver,
    server: HTTPSTestServer,
    telemetry: Telemetry,
    logs: list[MutableMapping[str, Any]],
    manager: HttpClientManager,
) -> None:
    driver.get("/?token=S3CR3T")
    driver.get("/close")
    driver.settle()
    opened = [e for e in logs if e["event"] == n.LOG_CONNECTION_OPENED]
    closed = [e for e in logs if e["event"] == n.LOG_CONNECTION_CLOSED]
    assert len(opened) == 1
    assert opened[0]["log_level"] == "info"
    assert opened[0]["client"] == driver.kind
    assert opened[0]["server_port"] == server.port
    assert len(opened[0]["trace_id"]) == 32
    assert len(opened[0]["span_id"]) == 16
    [request_span] = [s for s in telemetry.finished() if s.name == "GET"][:1]
    assert opened[0]["trace_id"] == format(request_span.context.trace_id, "032x")
    assert len(closed) == 1
    assert closed[0]["reason"] == "server_closed"
    assert closed[0]["requests"] == 2
    reused = [e for e in logs if e["event"] == n.LOG_CONNECTION_REUSED]
    assert [e["log_level"] for e in reused] == ["debug"]
    assert "S3CR3T" not in json.dumps(logs, default=str)


def test_retry_and_pool_wait_are_logged(
    driver: Driver,
    server: HTTPSTestServer,
    manager: HttpClientManager,
    logs: list[MutableMapping[str, Any]],
) -> None:
    tel = Telemetry()
    tel.instrument(manager, pool_wait_warning=0.05)
    driver.get()
    with server.faulty(drop_after=1):
        driver.get()
    driver.concurrent(2, "/delay/0.2", max_connections=1, max_keepalive_connections=1)
    assert [e["reason"] for e in logs if e["event"] == n.LOG_REQUEST_RETRIED] == [
        "stale_connection"
    ]
    waits = [e for e in logs if e["event"] == n.LOG_POOL_WAIT_EXCEEDED]
    assert len(waits) == 1
    assert waits[0]["wait_time"] >= 0.1
    assert waits[0]["log_level"] == "warning"
    manager.close_all()
    tel.shutdown()


def test_client_lifecycle_is_logged(
    driver: Driver, logs: list[MutableMapping[str, Any]], manager: HttpClientManager
) -> None:
    driver.get()
    driver.close_for_real()
    driver.get()
    events = [e["event"] for e in logs if e["event"].startswith("httpmgr.client_")]
    assert events[:2] == [n.LOG_CLIENT_CREATED, n.LOG_CLIENT_RECREATED]


def test_library_does_not_print_when_structlog_is_not_configured(
    driver: Driver, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    structlog.reset_defaults()
    assert not structlog.is_configured()
    caplog.set_level(logging.INFO, logger="httpmgr")
    driver.get()
    out = capsys.readouterr()
    assert out.out == ""
    assert any(r.getMessage().startswith("httpmgr.client_created") for r in caplog.records)


# -- redaction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/p?api_key=abc&x=1", "https://h/p?api_key=REDACTED&x=1"),
        ("https://user:pw@h:8443/p", "https://REDACTED:REDACTED@h:8443/p"),
        ("https://h/p?X-Amz-Signature=s&X-Amz-Credential=c", None),
        ("https://h/p?SIGNATURE=s&Token=t&apiKey=k", None),
        ("https://h/p?api%5Fkey=abc", "https://h/p?api%5Fkey=REDACTED"),
        ("https://h/p?q=1#access_token=abc", "https://h/p?q=1"),
        ("https://h/p?flag&sig=1", "https://h/p?flag&sig=REDACTED"),
        ("https://h:99999/p", "REDACTED"),
    ],
)
def test_redact_url(url: str, expected: str | None) -> None:
    out = Redactor().url(url)
    if expected is not None:
        assert out == expected
    for secret in ("abc", "pw", "=s", "=c", "=t", "=k"):
        assert secret not in out


def test_extra_sensitive_parameters() -> None:
    assert Redactor(["nonce"]).url("https://h/?nonce=42&a=1") == "https://h/?nonce=REDACTED&a=1"


_NAMES = ["api_key", "apikey", "sign", "signature", "token", "access_token", "secret", "password",
          "AWSAccessKeyId", "sig", "X-Goog-Signature", "X-Amz-Security-Token"]  # fmt: skip


def _mixed_case(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(name, flips, strict=True))


@st.composite
def _secret_urls(draw: st.DrawFn) -> tuple[str, str]:
    secret = draw(st.text(alphabet="ABCDEFGHJKMNPQRSTUVWXYZ23456789", min_size=12, max_size=24))
    name = _mixed_case(draw, draw(st.sampled_from(_NAMES)))
    if draw(st.booleans()):
        name = "".join(f"%{ord(c):02X}" if draw(st.booleans()) else c for c in name)
    value = quote(secret) if draw(st.booleans()) else secret
    other = draw(st.sampled_from(["", "a=1&", "symbol=BTC&limit=5&"]))
    userinfo = f"u:{secret}@" if draw(st.booleans()) else ""
    return f"https://{userinfo}api.example.com/v1/x?{other}{name}={value}", secret


@settings(max_examples=300, deadline=None)
@given(_secret_urls())
def test_secrets_never_survive_redaction(case: tuple[str, str]) -> None:
    url, secret = case
    out = Redactor().url(url)
    assert secret not in out
    assert quote(secret) not in out
    processed = RedactURLs()(None, "info", {"event": "x", "url": url, "msg": f"GET {url} done"})
    assert secret not in json.dumps(processed)


def test_add_trace_context_processor() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    assert add_trace_context(None, "info", {"event": "x"}) == {"event": "x"}
    with tracer.start_as_current_span("s") as span:
        out = add_trace_context(None, "info", {"event": "x"})
    assert out["trace_id"] == format(span.get_span_context().trace_id, "032x")


# -- opentelemetry-instrument -------------------------------------------------------------


def test_instrumentor_entry_point_is_registered_and_idempotent() -> None:
    from httpmgr import default_manager
    from httpmgr._recorder import Recorder
    from httpmgr.telemetry import HttpmgrInstrumentor

    [ep] = [
        e
        for e in importlib.metadata.entry_points(group="opentelemetry_instrumentor")
        if e.name == "httpmgr"
    ]
    assert ep.load() is HttpmgrInstrumentor
    instrumentor = HttpmgrInstrumentor()
    instrumentor.instrument()
    recorder = default_manager().sink
    assert isinstance(recorder, Recorder)
    instrumentor.instrument()  # again: nothing changes
    assert default_manager().sink is recorder
    instrumentor.uninstrument()
    assert default_manager().sink is None
