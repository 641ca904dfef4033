"""End to end: a real workload, scraped by real Prometheus, traced into real Jaeger v2.

Every panel query of every dashboard is run against Prometheus and must return data;
the reuse and handshake panels must return what the server-side counters predict.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from httpmgr import _names as n
from httpmgr.testing import unused_port

from .stack import REPO, Jaeger, Prometheus, wait_until

pytestmark = pytest.mark.xdist_group("e2e")  # one stack, on one worker

DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
SERVICE = "httpmgr-e2e"


@dataclass
class Stack:
    prometheus: Prometheus
    jaeger: Jaeger
    phase1_start: float
    phase1_end: float
    servers: dict[str, dict[str, int]]
    first: float  # scrape timestamps bounding phase 1 exactly
    last: float

    @property
    def window(self) -> str:
        return f"{round((self.last - self.first) * 1000)}ms"


def _scrape_times(prom: Prometheus) -> list[float]:
    [series] = prom.query('up{job="app"}[5m]')
    return [float(ts) for ts, _ in series["values"]]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    jaeger = Jaeger()
    metrics_port = unused_port()
    prometheus = Prometheus([f"127.0.0.1:{metrics_port}"], REPO / "telemetry/prometheus/alerts.yml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HTTPMGR_"))}
    env.update(
        HTTPMGR_TELEMETRY="1",
        HTTPMGR_TELEMETRY_ALL_CLIENTS="1",
        OTEL_SERVICE_NAME=SERVICE,
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_url,
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    app = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("workload.py"))],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        assert app.stdin is not None
        assert json.loads(app.stdout.readline())["ready"]
        # Prometheus starts scraping a few seconds after it starts: wait for it.
        wait_until(lambda: _value(prometheus.query('up{job="app"}')) == 1, 30, "first scrape")
        app.stdin.write("go\n")
        app.stdin.flush()
        lines: dict[int, dict[str, Any]] = {}
        for line in app.stdout:
            event = json.loads(line)
            lines.setdefault(event["phase"], event)
            if event["phase"] == 2:
                break
        assert 2 in lines, "the workload stopped early"
        start, end = lines[1]["start"], lines[2]["end"]
        wait_until(lambda: max(_scrape_times(prometheus)) > end + 1.5, 20, "a scrape after phase 1")
        times = _scrape_times(prometheus)
        assert any(t < start for t in times), (start, end, times)
        first = max(t for t in times if t < start)
        last = max(times)
        yield Stack(prometheus, jaeger, start, end, lines[2]["servers"], first, last)
    finally:
        if app.stdin:
            app.stdin.close()
        app.wait(30)
        if app.stdout:
            app.stdout.close()
        prometheus.close()
        jaeger.close()


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _queries() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in _panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                found.append((path.name, f"{panel['title']} [{target['refId']}]", target["expr"]))
    return found


def _fill(expr: str, stack: Stack, client: str = ".*", host: str = ".*") -> str:
    return (
        expr.replace("$__rate_interval", stack.window)
        .replace("$client", client)
        .replace("$host", host)
    )


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_dashboards_exist() -> None:
    assert DASHBOARDS, "no dashboard JSON under dashboards/"
    assert len(_queries()) >= 17


@pytest.mark.parametrize(("dashboard", "panel", "expr"), _queries())
def test_every_panel_query_returns_data(
    stack: Stack, dashboard: str, panel: str, expr: str
) -> None:
    result = stack.prometheus.query(_fill(expr, stack), at=stack.last)
    assert result, f"{dashboard} / {panel}: no series for {_fill(expr, stack)}"
    print(f"{panel}: " + ", ".join(f"{r['metric']} = {r['value'][1]}" for r in result))


def _panel_expr(title: str) -> str:
    [expr] = [e for _, p, e in _queries() if p == f"{title} [A]"]
    return expr


@pytest.mark.parametrize("client", ["httpx", "httpx_async", "aiohttp", ".*"])
def test_reuse_and_handshake_panels_match_the_server(stack: Stack, client: str) -> None:
    kinds = [k for k in ("httpx", "httpx_async", "aiohttp") if re.fullmatch(client, k)]
    requests = sum(stack.servers[k]["requests"] for k in kinds)
    handshakes = sum(stack.servers[k]["handshakes"] for k in kinds)
    assert requests == 40 * len(kinds)
    # every 5th response closed the connection: 8 closes, 7 new connections (the first
    # request went out on the connection phase 0 left open)
    assert handshakes == 7 * len(kinds)
    reuse = stack.prometheus.query(
        _fill(_panel_expr("Connection reuse ratio"), stack, client=client), at=stack.last
    )
    per_request = stack.prometheus.query(
        _fill(_panel_expr("TLS handshakes per request"), stack, client=client), at=stack.last
    )
    assert _value(reuse) == pytest.approx((requests - handshakes) / requests, abs=1e-9)
    assert _value(per_request) == pytest.approx(handshakes / requests, abs=1e-9)


def test_unpooled_share_matches_the_server(stack: Stack) -> None:
    legacy = stack.servers["legacy"]["handshakes"]
    managed = sum(stack.servers[k]["handshakes"] for k in ("httpx", "httpx_async", "aiohttp"))
    share = stack.prometheus.query(
        _fill(_panel_expr("Clients not pooled: share of handshakes"), stack), at=stack.last
    )
    assert legacy == 10
    assert _value(share) == pytest.approx(legacy / (legacy + managed), abs=1e-9)


def test_alert_rules_are_loaded_and_healthy(stack: Stack) -> None:
    from .stack import http_json

    groups = http_json(stack.prometheus.url + "/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) >= {
        "HttpmgrLowConnectionReuse",
        "HttpmgrHandshakesPerRequestHigh",
        "HttpmgrPoolSaturated",
        "HttpmgrQueueWaitHigh",
        "HttpmgrConnectionChurn",
        "HttpmgrUnpooledClients",
    }
    assert all(r["health"] == "ok" for r in rules.values()), rules


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def test_jaeger_has_request_spans_with_connection_attributes(stack: Stack) -> None:
    def received() -> bool:
        return len(stack.jaeger.traces(SERVICE)) >= 3 * 40

    wait_until(received, 20, "traces in Jaeger")
    traces = stack.jaeger.traces(SERVICE)
    spans = [(t, s) for t in traces for s in t["spans"]]
    client_spans = [(t, s) for t, s in spans if _tags(s).get("span.kind") == "client"]
    reused = [_tags(s).get(n.CONNECTION_REUSED) for _, s in client_spans]
    assert True in reused
    assert False in reused
    services = {p["serviceName"] for t in traces for p in t["processes"].values()}
    assert services == {SERVICE}
    # a first request on a connection carries the set-up spans as its children
    first_trace, first = next((t, s) for t, s in client_spans if not _tags(s)[n.CONNECTION_REUSED])
    children = {
        s["operationName"]: s
        for s in first_trace["spans"]
        if any(r["spanID"] == first["spanID"] for r in s["references"])
    }
    setup = next(s for name, s in children.items() if name.startswith(n.SPAN_CONNECTION_SETUP))
    grandchildren = {
        s["operationName"]
        for s in first_trace["spans"]
        if any(r["spanID"] == setup["spanID"] for r in s["references"])
    }
    assert n.SPAN_SOCKET_CONNECT in grandchildren
    # nothing secret reached Jaeger
    assert "e2e-secret-value" not in json.dumps(traces)
    urls = [str(_tags(s).get("url.full")) for _, s in client_spans]
    assert any("api_key=REDACTED" in u for u in urls)


def test_no_request_failed_in_the_measured_window(stack: Stack) -> None:
    errors = stack.prometheus.query(
        f'sum(increase(http_client_request_duration_seconds_count{{error_type!=""}}'
        f"[{stack.window}]))",
        at=stack.last,
    )
    assert not errors or _value(errors) == 0
    assert time.time() > stack.phase1_end
