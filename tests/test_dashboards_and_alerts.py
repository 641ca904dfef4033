"""Dashboards and alert rules, checked without a server (the e2e suite runs them live)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from httpmgr import _names as n

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
PROMETHEUS_DIR = REPO / "telemetry" / "prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _prometheus_names() -> set[str]:
    """Every series the telemetry contract produces, as the Prometheus exporter names it."""
    names = {"http_client_request_duration_seconds"}  # from the HTTP instrumentations
    counters = {n.REQUESTS, n.CONNECTIONS_OPENED, n.TLS_HANDSHAKES, n.RETRIES}
    histograms = {n.CONNECT_DURATION, n.TLS_HANDSHAKE_DURATION, n.TIME_IN_QUEUE}
    histograms |= {n.CONNECTION_DURATION}
    gauges = {n.OPEN_CONNECTIONS, n.ACTIVE_REQUESTS, n.POOL_MAX_CONNECTIONS}
    names |= {c.replace(".", "_") + "_total" for c in counters}
    names |= {g.replace(".", "_") for g in gauges}
    for h in histograms | {"http.client.request.duration"}:
        base = h.replace(".", "_") + "_seconds"
        names |= {base + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


@pytest.fixture(params=DASHBOARDS, ids=lambda p: p.name)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(request.param.read_text())
    return loaded


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["httpmgr-pooling.json"]


def test_committed_json_is_what_the_generator_produces() -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(REPO / "dashboards" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "httpmgr-pooling"
    assert dashboard["schemaVersion"] >= 41  # Grafana 12
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("client", "host"):
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["includeAll"] is True
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        for target in panel.get("targets", []):
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip()


def test_every_metric_a_panel_queries_is_in_the_contract(dashboard: dict[str, Any]) -> None:
    contract = _prometheus_names()
    used = set()
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            used |= set(re.findall(r"\b((?:http|httpmgr)_[a-z_]+)\s*\{", target["expr"]))
    assert used
    assert used <= contract, used - contract


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make test` installs the Debian package prometheus")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_promtool(args: list[str]) -> None:
    proc = subprocess.run(
        [_promtool(), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_unit_test_and_a_runbook() -> None:
    rules = (PROMETHEUS_DIR / "alerts.yml").read_text()
    tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text()
    alerts = re.findall(r"- alert: (\w+)", rules)
    assert len(alerts) == 6
    assert rules.count("runbook:") == len(alerts)
    for alert in alerts:
        assert f"alertname: {alert}" in tests, alert
