"""The ``httpmgr`` command (also ``python -m httpmgr``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._demo import KINDS, as_json, render_table, run_demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="httpmgr", description="Persistent, pooled HTTP clients that prove they pool."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="compare a client per request with httpmgr's shared client",
        description=(
            "Send the same GETs with a new client per request and with httpmgr, for each "
            "client kind, and print what the server and httpmgr's telemetry counted, "
            "latency, CPU time and the speed-up. With no --url, against an embedded "
            "HTTPS server on 127.0.0.1 with a fresh CA. HTTPMGR_TELEMETRY=1 exports the "
            "demo's spans and metrics like any application's."
        ),
    )
    demo.add_argument("-n", "--requests", type=int, default=300, help="GETs per row (300)")
    demo.add_argument("-c", "--concurrency", type=int, default=1, help="requests at once (1)")
    demo.add_argument(
        "--clients",
        default=",".join(KINDS),
        help=f"comma-separated client kinds ({','.join(KINDS)})",
    )
    demo.add_argument("--url", help="a real target instead of the embedded server")
    demo.add_argument("--json", action="store_true", help="machine-readable output")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    kinds = [k.strip() for k in args.clients.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        parser.error(f"--clients: unknown {unknown}; accepted: {', '.join(KINDS)}")
    if args.requests < 1:
        parser.error("--requests must be >= 1")
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    if args.url is not None and not args.url.startswith(("http://", "https://")):
        parser.error("--url must start with http:// or https://")

    rows = run_demo(
        requests=args.requests,
        concurrency=args.concurrency,
        kinds=kinds,
        url=args.url,
        progress=not (args.no_progress or args.json),
    )
    url = args.url or "the embedded HTTPS server (127.0.0.1)"
    if args.json:
        print(json.dumps(as_json(rows, url=url, concurrency=args.concurrency), indent=2))
    else:
        print(render_table(rows, url=url, concurrency=args.concurrency))
    return 1 if any(r.errors for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
