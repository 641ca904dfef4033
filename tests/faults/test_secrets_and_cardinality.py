"""No secret reaches telemetry, and metric series stay bounded, under real traffic."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from httpmgr import _names as n
from httpmgr.testing import HTTPSTestServer
from tests.drivers import Driver
from tests.otel import Telemetry

_NAMES = ["api_key", "apikey", "sign", "signature", "token", "access_token", "secret",
          "password", "AWSAccessKeyId", "sig", "X-Amz-Signature", "X-Goog-Signature"]  # fmt: skip


@st.composite
def secret_requests(draw: st.DrawFn) -> tuple[str, str, str]:
    secret = draw(st.text(alphabet="ABCDEFGHJKMNPQRSTUVWXYZ23456789", min_size=16, max_size=24))
    name = draw(st.sampled_from(_NAMES))
    name = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
    if draw(st.booleans()):
        name = quote(name, safe="")
        name = "".join(f"%{ord(c):02X}" if c == "_" and draw(st.booleans()) else c for c in name)
    value = secret if draw(st.booleans()) else quote(secret)
    prefix = draw(st.sampled_from(["", "symbol=BTC&", "a=1&b=2&"]))
    path = "/" + draw(st.sampled_from(["v1/order", "ticker", "x/y/z"]))
    userinfo = f"trader:{secret}@" if draw(st.booleans()) else ""
    return f"{path}?{prefix}{name}={value}", userinfo, secret


def _everything(telemetry: Telemetry) -> str:
    spans = [
        {"name": s.name, "attributes": dict(s.attributes or {}), "events": [
            dict(e.attributes or {}) for e in s.events]}
        for s in telemetry.finished()
    ]  # fmt: skip
    data = telemetry.reader.get_metrics_data()
    points = [
        dict(p.attributes or {})
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    ]
    return json.dumps({"spans": spans, "metrics": points}, default=str)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=secret_requests())
def test_secrets_in_urls_never_reach_spans_metrics_or_logs(
    driver: Driver, server: HTTPSTestServer, telemetry: Telemetry, case: tuple[str, str, str]
) -> None:
    path_and_query, userinfo, secret = case
    base = driver.base_url
    if userinfo:
        driver.base_url = base.replace("https://", f"https://{userinfo}")
    try:
        with structlog.testing.capture_logs() as logs:
            assert driver.get(path_and_query) == "ok"
    finally:
        driver.base_url = base
        structlog.reset_defaults()
    exported = _everything(telemetry) + json.dumps(logs, default=str)
    assert secret not in exported
    assert quote(secret) not in exported
    [request] = [s for s in telemetry.finished() if s.name == "GET"][-1:]
    url = str((request.attributes or {})[n.URL_FULL])
    assert "REDACTED" in url
    telemetry.spans.clear()


def test_ten_thousand_distinct_urls_make_a_bounded_number_of_series(
    driver: Driver, telemetry: Telemetry
) -> None:
    def series() -> int:
        data: Any = telemetry.reader.get_metrics_data()
        return sum(
            len(m.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )

    for i in range(50):
        driver.get(f"/warm/{i}?q={i}")
    after_warm_up = series()
    total = 10_000 if driver.kind == "httpx" else 2_000
    for i in range(total):
        driver.get(f"/users/{i}/orders/{i * 7}?page={i}&session={i:x}")
    assert series() == after_warm_up
    assert after_warm_up < 40
    spans_paths = {str((s.attributes or {}).get(n.URL_FULL)) for s in telemetry.finished()}
    assert len(spans_paths) > 1000  # the spans do carry each URL; only metrics are bounded
