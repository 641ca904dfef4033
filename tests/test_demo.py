"""The ``httpmgr demo`` command, run as users run it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "httpmgr", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_json_counts_match_the_server() -> None:
    proc = _demo("-n", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {(r["client"], r["variant"]): r for r in report["rows"]}
    assert len(rows) == 6
    for kind in ("httpx", "httpx_async", "aiohttp"):
        per_request, managed = rows[(kind, "per-request")], rows[(kind, "httpmgr")]
        assert per_request["server_tls_handshakes"] == 30
        assert per_request["server_tcp_connects"] == 30
        assert managed["server_tls_handshakes"] == 1
        assert managed["server_tcp_connects"] == 1
        assert managed["telemetry_tls_handshakes"] == 1
        assert managed["telemetry_reuse_ratio"] == pytest.approx(29 / 30)
        assert managed["speedup"] > 1
        assert managed["errors"] == per_request["errors"] == 0
    assert rows[("httpx", "per-request")]["telemetry_tls_handshakes"] == 30
    assert rows[("aiohttp", "per-request")]["telemetry_tls_handshakes"] is None


def test_demo_table_with_concurrency_and_selected_clients() -> None:
    proc = _demo("-n", "20", "-c", "4", "--clients", "httpx,aiohttp")
    assert proc.returncode == 0, proc.stderr
    assert "concurrency 4" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("httpx", "aiohttp"))]
    assert [line.split()[:2] for line in lines] == [
        ["httpx", "per-request"],
        ["httpx", "httpmgr"],
        ["aiohttp", "per-request"],
        ["aiohttp", "httpmgr"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "requests"], "--clients: unknown ['requests']"),
        (["-n", "0"], "--requests must be >= 1"),
        (["--url", "ftp://example"], "--url must start with http:// or https://"),
    ],
)
def test_demo_bad_arguments(args: list[str], message: str) -> None:
    proc = _demo(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
