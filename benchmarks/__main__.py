"""Run the benchmarks side by side and report medians and ratios.

    python -m benchmarks                 # all groups, print the report
    python -m benchmarks --write         # ... and write BENCHMARKS.md
    python -m benchmarks --quick --groups telemetry-httpx   # a smoke run

Each variant runs in a fresh process (so one variant's OpenTelemetry set-up cannot
leak into another's) against an HTTPS server in a process of its own (so its CPU is
not the client's). Variants of a group run interleaved, round after round, and the
report gives the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from httpmgr.testing import ServerProcess

from .worker import WARMUP

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Variant:
    label: str
    kind: str
    variant: str
    concurrency: int = 1


@dataclass
class Group:
    name: str
    title: str
    requests: int
    variants: list[Variant]
    baseline: str  # label the ratios are relative to
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def groups(quick: bool) -> list[Group]:
    k = 10 if quick else 1
    pooling = []
    for c in (1, 10):
        pooling += [
            Variant(f"per-request, CA bundle loaded (c={c})", "httpx",
                    "per_request_default_verify", c),
            Variant(f"per-request, shared SSL context (c={c})", "httpx",
                    "per_request_shared_ctx", c),
            Variant(f"httpmgr (c={c})", "httpx", "managed_off", c),
        ]  # fmt: skip
    overhead = [
        ("bare persistent client", "bare"),
        ("httpmgr, telemetry off", "managed_off"),
        ("httpmgr, telemetry on", "managed_on"),
        ("bare + OTel HTTP instrumentation only", "bare_contrib"),
    ]
    return [
        Group(
            "pooling",
            "Per-request client vs httpmgr (httpx, HTTPS on loopback)",
            1000 // k,
            pooling,
            "",
        ),
        Group(
            "telemetry-httpx",
            "Telemetry overhead: httpx.Client, sequential",
            3000 // k,
            [Variant(label, "httpx", v) for label, v in overhead],
            "bare persistent client",
        ),
        Group(
            "telemetry-httpx-async",
            "Telemetry overhead: httpx.AsyncClient, concurrency 50",
            3000 // k,
            [Variant(label, "httpx_async", v, 50) for label, v in overhead],
            "bare persistent client",
        ),
        Group(
            "telemetry-aiohttp",
            "Telemetry overhead: aiohttp.ClientSession, concurrency 50",
            3000 // k,
            [Variant(label, "aiohttp", v, 50) for label, v in overhead],
            "bare persistent client",
        ),
    ]


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {spec}: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(group: Group, server: ServerProcess, rounds: int) -> None:
    for _ in range(rounds):
        for v in group.variants:
            server.reset()
            spec = {
                "kind": v.kind,
                "variant": v.variant,
                "concurrency": v.concurrency,
                "requests": group.requests,
                "url": server.url,
                "ca_path": server.ca_path,
            }
            result = run_worker(spec)
            result["server_handshakes"] = server.stats()["handshakes"]
            group.results.setdefault(v.label, []).append(result)
            print(f"  {group.name}: {v.label}: {_us(result):.0f} µs CPU/req", file=sys.stderr)


def _us(result: dict[str, Any]) -> float:
    return float(result["cpu_s"]) / result["requests"] * 1e6


def _median(results: list[dict[str, Any]], fn: Any) -> float:
    return statistics.median(fn(r) for r in results)


def summarize(group: Group) -> list[dict[str, Any]]:
    rows = []
    for v in group.variants:
        results = group.results[v.label]
        rows.append(
            {
                "label": v.label,
                "cpu_us": _median(results, _us),
                "rps": _median(results, lambda r: r["requests"] / r["wall_s"]),
                "ms": _median(results, lambda r: r["wall_s"] / r["requests"] * 1e3),
                "handshakes": _median(results, lambda r: r["server_handshakes"]),
                "errors": sum(r["errors"] for r in results),
                "requests": group.requests + WARMUP,  # the server saw the warm-up too
            }
        )
    return rows


def memory(server: ServerProcess, quick: bool) -> dict[str, Any]:
    out = {}
    for n in (1_000, 10_000 if quick else 100_000):
        spec = {
            "kind": "httpx",
            "variant": "managed_on",
            "concurrency": 1,
            "requests": n,
            "url": server.url,
            "ca_path": server.ca_path,
        }
        out[n] = run_worker(spec)
        print(f"  memory: {n} requests: {out[n]['max_rss_kb']} KiB", file=sys.stderr)
    return out


def _table(rows: list[dict[str, Any]], baseline: str) -> str:
    lines = [
        "| variant | CPU µs/request | ratio | requests/s | ms/request | server TLS handshakes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = {r["label"]: r for r in rows}.get(baseline)
    for r in rows:
        ratio = f"{r['cpu_us'] / base['cpu_us']:.3f}x" if base else ""
        lines.append(
            f"| {r['label']} | {r['cpu_us']:.0f} | {ratio} | {r['rps']:.0f} | {r['ms']:.3f} | "
            f"{r['handshakes']:.0f} of {r['requests']} |"
        )
    return "\n".join(lines)


def _pooling_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| concurrency | variant | requests/s | CPU µs/request | server TLS handshakes "
        "| httpmgr speed-up (throughput) | httpmgr CPU saving |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    by = {r["label"]: r for r in rows}
    for c in (1, 10):
        managed = by[f"httpmgr (c={c})"]
        for label in (
            f"per-request, CA bundle loaded (c={c})",
            f"per-request, shared SSL context (c={c})",
            f"httpmgr (c={c})",
        ):
            r = by[label]
            speed = managed["rps"] / r["rps"]
            saving = r["cpu_us"] / managed["cpu_us"]
            lines.append(
                f"| {c} | {label.rsplit(' (', 1)[0]} | {r['rps']:.0f} | {r['cpu_us']:.0f} | "
                f"{r['handshakes']:.0f} of {r['requests']} | {speed:.1f}x | {saving:.1f}x |"
            )
    return "\n".join(lines)


def _targets(summaries: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = []
    for name, rows in summaries.items():
        if not name.startswith("telemetry"):
            continue
        by = {r["label"]: r for r in rows}
        off = by["httpmgr, telemetry off"]["cpu_us"] / by["bare persistent client"]["cpu_us"]
        on = (
            by["httpmgr, telemetry on"]["cpu_us"]
            / by["bare + OTel HTTP instrumentation only"]["cpu_us"]
        )
        out.append(
            f"| {name.removeprefix('telemetry-')} | {off:.3f}x | "
            f"{'met' if off <= 1.03 else 'missed'} | {on:.3f}x | "
            f"{'met' if on <= 1.10 else 'missed'} |"
        )
    return out


def report(
    summaries: dict[str, list[dict[str, Any]]],
    groups_: list[Group],
    mem: dict[int, Any] | None,
    command: str,
    took: float,
) -> str:
    cpu = _cpu_model()
    parts = [
        "# Benchmarks",
        "",
        "Measured, never typed in: this file is written by "
        f"`{command}` ({took / 60:.0f} min on the machine below).",
        "",
        f"- Machine: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}",
        f"- Python {platform.python_version()}; httpx {version('httpx')}, "
        f"httpcore {version('httpcore')}, aiohttp {version('aiohttp')}, "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}, httpmgr {version('httpmgr')}",
        "- Server: `httpmgr.testing.HTTPSTestServer` (TLS 1.3, HTTP/1.1, each response in one "
        "write, TCP_NODELAY) in its own process on 127.0.0.1; CPU is the client process's "
        "only (`time.process_time`), after 200 warm-up requests.",
        "- Each variant runs in a fresh process; the variants of a group run interleaved, "
        "and every figure is the median of the rounds.",
        "",
    ]
    for g in groups_:
        rows = summaries[g.name]
        parts += [f"## {g.title}", "", f"{g.requests} requests per run.", ""]
        parts.append(_pooling_table(rows) if g.name == "pooling" else _table(rows, g.baseline))
        parts.append("")
    parts += _meaning(summaries)
    targets = _targets(summaries)
    if targets:
        parts += [
            "## Targets",
            "",
            "| client | httpmgr telemetry off vs bare | target ≤ 1.03x | telemetry on vs "
            "OTel HTTP instrumentation alone | target ≤ 1.10x |",
            "|---|---:|---|---:|---|",
            *targets,
            "",
        ]
    if mem:
        small, big = sorted(mem)
        growth = (mem[big]["max_rss_kb"] - mem[small]["max_rss_kb"]) / 1024
        parts += [
            "## Memory (httpx.Client through httpmgr, telemetry on)",
            "",
            "| requests | peak RSS | metric series |",
            "|---:|---:|---:|",
            *(
                f"| {n:,} | {mem[n]['max_rss_kb'] / 1024:.1f} MiB | {mem[n]['series']} |"
                for n in (small, big)
            ),
            "",
            f"Growth from {small:,} to {big:,} requests: {growth:.1f} MiB.",
            "",
        ]
    return "\n".join(parts)


def _meaning(summaries: dict[str, list[dict[str, Any]]]) -> list[str]:
    """What the tables say, in words, with the figures taken from them."""
    out = ["## What the numbers mean", ""]
    pooling = {r["label"]: r for r in summaries.get("pooling", [])}
    for c in (1, 10):
        m = pooling.get(f"httpmgr (c={c})")
        shared = pooling.get(f"per-request, shared SSL context (c={c})")
        bundle = pooling.get(f"per-request, CA bundle loaded (c={c})")
        if not (m and shared and bundle):
            continue
        out.append(
            f"- Concurrency {c}: a client per request made {shared['handshakes']:.0f} TLS "
            f"handshakes for {shared['requests']} requests, httpmgr {m['handshakes']:.0f}. "
            f"httpmgr served {m['rps'] / shared['rps']:.1f}x the requests per second of a "
            f"per-request client sharing one SSL context ({shared['cpu_us'] / m['cpu_us']:.1f}x "
            f"less CPU per request), and {m['rps'] / bundle['rps']:.1f}x those of httpx's "
            f"default per-request pattern, which loads the CA bundle for every client "
            f"({bundle['cpu_us'] / m['cpu_us']:.0f}x less CPU)."
        )
    for name, rows in summaries.items():
        if not name.startswith("telemetry"):
            continue
        by = {r["label"]: r for r in rows}
        bare, off = by["bare persistent client"], by["httpmgr, telemetry off"]
        on, contrib = by["httpmgr, telemetry on"], by["bare + OTel HTTP instrumentation only"]
        out.append(
            f"- {name.removeprefix('telemetry-')}: httpmgr with telemetry off costs "
            f"{off['cpu_us'] - bare['cpu_us']:+.0f} µs CPU per request over the bare client; "
            f"httpmgr's connection telemetry adds {on['cpu_us'] - contrib['cpu_us']:+.0f} µs "
            f"over the OpenTelemetry HTTP instrumentation alone (whose own cost is "
            f"{contrib['cpu_us'] - bare['cpu_us']:+.0f} µs)."
        )
    out.append("")
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10x fewer requests, 1 round")
    parser.add_argument("--groups", help="comma-separated group names (default: all)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    chosen = groups(args.quick)
    if args.groups:
        names = set(args.groups.split(","))
        unknown = names - {g.name for g in chosen}
        if unknown:
            parser.error(f"unknown groups {sorted(unknown)}; known: {[g.name for g in chosen]}")
        chosen = [g for g in chosen if g.name in names]
    started = time.monotonic()
    with ServerProcess() as server:
        for group in chosen:
            measure(group, server, rounds)
        mem = None if args.no_memory else memory(server, args.quick)
    summaries = {g.name: summarize(g) for g in chosen}
    (ROOT / "benchmarks" / "results.json").write_text(
        json.dumps({"summaries": summaries, "memory": mem}, indent=2) + "\n"
    )
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(summaries, chosen, mem, command.strip(), time.monotonic() - started)
    print(text)
    if args.write:
        (ROOT / "BENCHMARKS.md").write_text(text + "\n")
    errors = sum(r["errors"] for rows in summaries.values() for r in rows)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
