"""Generate the Grafana dashboard for httpmgr's connection-pooling metrics.

The dashboard is built with the typed builders of ``grafana-foundation-sdk`` (classic
dashboard JSON, Grafana 12 schema) and written to ``httpmgr-pooling.json`` next to this
script. The JSON file is generated: edit this script, never the JSON.

Regenerate the JSON after changing this script::

    python dashboards/generate.py

Check that the committed JSON matches this script (exits 1 and prints a diff hint if
it does not, e.g. in CI)::

    python dashboards/generate.py --check

Every panel and every query uses the ``${datasource}`` variable, so the dashboard can be
imported into any Grafana with a Prometheus data source that scrapes httpmgr's metrics
(see docs/telemetry.md for the metric names).
"""

import argparse
import difflib
import itertools
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

with warnings.catch_warnings():
    # The SDK's classic dashboard model warns at import time that dashboardv2 is
    # preferred; the classic JSON is what we provision, so keep the script quiet
    # (and working under ``-W error``).
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import common as common_builder
    from grafana_foundation_sdk.builders import dashboard as dashboard_builder
    from grafana_foundation_sdk.builders import gauge, prometheus, stat, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as dashboard_model

OUTPUT = Path(__file__).resolve().parent / "httpmgr-pooling.json"

TITLE = "httpmgr — connection pooling"
UID = "httpmgr-pooling"

# Label selectors. ``SCOPE`` follows the dashboard variables; ``MANAGED`` limits it to
# clients httpmgr built, ``NOT_MANAGED`` to the ones it only measures.
SCOPE = 'httpmgr_client=~"$client",server_address=~"$host"'
MANAGED = SCOPE + ',httpmgr_client_managed="true"'
NOT_MANAGED = SCOPE + ',httpmgr_client_managed="false"'

REQUESTS = "httpmgr_client_requests_total"
TLS_HANDSHAKES = "httpmgr_client_tls_handshakes_total"
OPEN_CONNECTIONS = "http_client_open_connections"
POOL_MAX = "httpmgr_client_pool_max_connections"
QUEUE_TIME = "http_client_request_time_in_queue_seconds"
CONNECT_DURATION = "httpmgr_client_connect_duration_seconds"
TLS_DURATION = "httpmgr_client_tls_handshake_duration_seconds"
LIFETIME = "http_client_connection_duration_seconds"
RETRIES = "httpmgr_client_retries_total"

HEIGHT = 8


AnyPanel: TypeAlias = timeseries.Panel | stat.Panel | gauge.Panel


# --- PromQL helpers ------------------------------------------------------------------


def sel(metric: str, *matchers: str, scope: str = MANAGED) -> str:
    """``metric{scope,matchers...}``."""
    return metric + "{" + ",".join((scope, *matchers)) + "}"


def rate(metric: str, *matchers: str, scope: str = MANAGED) -> str:
    """``rate(metric{...}[$__rate_interval])``."""
    return "rate(" + sel(metric, *matchers, scope=scope) + "[$__rate_interval])"


def quantile(q: float, bucket_metric: str, *matchers: str) -> str:
    """``histogram_quantile(q, sum by (le) (rate(bucket{...}[$__rate_interval])))``."""
    return f"histogram_quantile({q}, sum by (le) ({rate(bucket_metric, *matchers)}))"


# --- builder helpers -----------------------------------------------------------------


def datasource() -> common.DataSourceRef:
    """The reference every panel and query uses: whatever ``$datasource`` selects."""
    return common.DataSourceRef(type_val="prometheus", uid="${datasource}")


def target(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .datasource(datasource())
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
    )


def quantile_targets(
    bucket_metric: str, *matchers: str, quantiles: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> list[prometheus.Dataquery]:
    return [
        target(quantile(q, bucket_metric, *matchers), f"p{round(q * 100)}", ref_id)
        for q, ref_id in zip(quantiles, "ABCDEFGH", strict=False)
    ]


def thresholds(base: str, *steps: tuple[float, str]) -> dashboard_builder.ThresholdsConfig:
    """Absolute thresholds: ``base`` below the first step, then each (value, colour)."""
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(dashboard_model.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                dashboard_model.Threshold(value=None, color=base),
                *(dashboard_model.Threshold(value=value, color=color) for value, color in steps),
            ]
        )
    )


def row(title: str) -> dashboard_builder.Row:
    return dashboard_builder.Row(title).datasource(datasource())


def ts_panel(
    title: str,
    description: str,
    unit: str,
    targets: list[prometheus.Dataquery],
    *,
    width: int = 12,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .unit(unit)
        .span(width)
        .height(HEIGHT)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builder.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    for query in targets:
        panel = panel.with_target(query)
    return panel


def stat_panel(
    title: str, description: str, unit: str, query: prometheus.Dataquery, *, width: int = 6
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .with_target(query)
        .unit(unit)
        .span(width)
        .height(HEIGHT)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builder.ReduceDataOptions().values(False).calcs(["lastNotNull"]))
    )


# --- panels --------------------------------------------------------------------------


def reuse_ratio_expr(by: str = "") -> str:
    agg = f"sum by ({by}) " if by else "sum"
    reused = rate(REQUESTS, 'httpmgr_connection_reused="true"')
    return f"{agg}({reused}) / {agg}({rate(REQUESTS)})"


def pooling_panels() -> list[timeseries.Panel | stat.Panel]:
    request_rate = ts_panel(
        "Request rate",
        "Requests per second sent by httpmgr's pooled clients, per client kind and host; "
        "healthy is a steady rate that matches the application's traffic.",
        "reqps",
        [
            target(
                f"sum by (httpmgr_client, server_address) ({rate(REQUESTS)})",
                "{{httpmgr_client}} {{server_address}}",
            )
        ],
    )
    reuse_ratio = (
        stat_panel(
            "Connection reuse ratio",
            "Share of requests sent on a kept-alive connection; healthy is above 90% "
            "(green), below 50% means the pool is not doing its job.",
            "percentunit",
            target(reuse_ratio_expr(), "reuse ratio"),
        )
        .min(0)
        .max(1)
        .thresholds(thresholds("red", (0.5, "yellow"), (0.9, "green")))
    )
    handshakes_per_request = (
        stat_panel(
            "TLS handshakes per request",
            "TLS handshakes divided by requests; healthy is close to 0 (green below 0.1), "
            "near 1 means every request pays for a new TLS session.",
            "none",
            target(
                f"sum({rate(TLS_HANDSHAKES)}) / sum({rate(REQUESTS)})",
                "handshakes per request",
            ),
        )
        .decimals(3)
        .thresholds(thresholds("green", (0.1, "yellow"), (0.5, "red")))
    )
    reuse_by_client = (
        ts_panel(
            "Reuse ratio by client",
            "Connection reuse ratio per client kind over time; healthy is every line flat "
            "and close to 100%.",
            "percentunit",
            [target(reuse_ratio_expr("httpmgr_client"), "{{httpmgr_client}}")],
        )
        .min(0)
        .max(1)
    )
    handshakes_per_second = ts_panel(
        "TLS handshakes per second",
        "New TLS sessions per second, per client kind and host; healthy is a low, flat "
        "line that only rises when connections are first opened or expire.",
        "ops",
        [
            target(
                f"sum by (httpmgr_client, server_address) ({rate(TLS_HANDSHAKES)})",
                "{{httpmgr_client}} {{server_address}}",
            )
        ],
    )
    return [
        request_rate,
        reuse_ratio,
        handshakes_per_request,
        reuse_by_client,
        handshakes_per_second,
    ]


def occupancy_panels() -> list[timeseries.Panel | gauge.Panel]:
    active = sel(OPEN_CONNECTIONS, 'http_connection_state="active"')
    not_queued = rate(QUEUE_TIME + "_bucket", 'le="0.0"')
    open_connections = (
        ts_panel(
            "Open connections: active vs idle",
            "Open connections stacked by state against the pool limit; healthy is active "
            "connections well below the limit line, with some idle ones ready for reuse.",
            "short",
            [
                target(
                    f"sum by (http_connection_state) ({sel(OPEN_CONNECTIONS)})",
                    "{{http_connection_state}}",
                ),
                target(f"sum({sel(POOL_MAX)})", "pool limit", "B"),
            ],
            width=16,
        )
        .fill_opacity(40)
        .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
        .override_by_query(
            "B",
            [
                # The pool limit is a reference line: drawn on its own, never stacked.
                dashboard_model.DynamicConfigValue(
                    id_val="custom.stacking", value={"group": "B", "mode": "none"}
                ),
                dashboard_model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
                dashboard_model.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"dash": [10, 10], "fill": "dash"}
                ),
                dashboard_model.DynamicConfigValue(
                    id_val="color", value={"fixedColor": "red", "mode": "fixed"}
                ),
            ],
        )
    )
    occupancy = (
        gauge.Panel()
        .title("Pool occupancy")
        .description(
            "Active connections as a share of the pool limit; healthy stays below 80%, "
            "near 100% means requests start queueing for a connection."
        )
        .datasource(datasource())
        .with_target(target(f"sum({active}) / sum({sel(POOL_MAX)})", "occupancy"))
        .unit("percentunit")
        .min(0)
        .max(1)
        .thresholds(thresholds("green", (0.8, "yellow"), (0.95, "red")))
        .reduce_options(common_builder.ReduceDataOptions().values(False).calcs(["lastNotNull"]))
        .show_threshold_markers(True)
        .span(8)
        .height(HEIGHT)
    )
    queue_wait = ts_panel(
        "Queue wait p50 / p95 / p99",
        "Time requests waited for a free pooled connection; healthy is p99 close to zero.",
        "s",
        quantile_targets(QUEUE_TIME + "_bucket"),
    )
    waited = ts_panel(
        "Requests that waited for a connection",
        "Requests per second that did not get a connection immediately; healthy is zero, "
        "a sustained rate means the pool limit is too low for the load.",
        "reqps",
        [
            target(
                f"sum({rate(QUEUE_TIME + '_count')}) - sum({not_queued})",
                "waited",
            )
        ],
    )
    return [open_connections, occupancy, queue_wait, waited]


def setup_latency_panels() -> list[timeseries.Panel]:
    return [
        ts_panel(
            "Connect duration p50 / p95 / p99",
            "Time to open a TCP connection (successful connects only); healthy is a few "
            "milliseconds and flat, spikes point at the network or the server's backlog.",
            "s",
            quantile_targets(CONNECT_DURATION + "_bucket", 'error_type=""'),
        ),
        ts_panel(
            "TLS handshake duration p50 / p95 / p99",
            "Time spent in TLS handshakes; healthy is low and flat, and rare because "
            "pooled connections skip the handshake.",
            "s",
            quantile_targets(TLS_DURATION + "_bucket"),
        ),
    ]


def lifetime_panels() -> list[timeseries.Panel]:
    failed = 'error_type!=""'
    return [
        ts_panel(
            "Connection lifetime p50 / p95",
            "How long connections live before they close; healthy is long lifetimes "
            "(minutes), short ones mean connections are thrown away too early.",
            "s",
            quantile_targets(LIFETIME + "_bucket", quantiles=(0.5, 0.95)),
        ),
        ts_panel(
            "Connections closed by reason",
            "Connections closed per second by reason; healthy is a low rate dominated by "
            "idle expiry, not by server closes or errors.",
            "ops",
            [
                target(
                    f"sum by (httpmgr_close_reason) ({rate(LIFETIME + '_count')})",
                    "{{httpmgr_close_reason}}",
                )
            ],
        ),
        ts_panel(
            "Stale-connection retries",
            "Requests retried because a pooled connection had gone stale; healthy is zero "
            "or rare blips, a steady rate means the idle timeout outlives the server's.",
            "ops",
            [
                target(
                    f"sum by (httpmgr_client, httpmgr_retry_reason) ({rate(RETRIES)})",
                    "{{httpmgr_client}} {{httpmgr_retry_reason}}",
                )
            ],
        ),
        ts_panel(
            "Errors by error.type",
            "Failed TCP connects and TLS handshakes per second by error.type; healthy is "
            "an empty panel.",
            "ops",
            [
                target(
                    f"sum by (error_type) ({rate(CONNECT_DURATION + '_count', failed)})",
                    "connect {{error_type}}",
                ),
                target(
                    f"sum by (error_type) ({rate(TLS_HANDSHAKES, failed)})",
                    "tls {{error_type}}",
                    "B",
                ),
            ],
        ),
    ]


def not_pooled_panels() -> list[timeseries.Panel | stat.Panel]:
    handshakes = ts_panel(
        "Clients not pooled: TLS handshakes per second",
        "TLS handshakes per second from httpx clients that httpmgr did not build "
        "(only measured with HTTPMGR_TELEMETRY_ALL_CLIENTS=1); healthy is empty or flat, "
        "a busy line is a client worth moving to httpmgr.",
        "ops",
        [
            target(
                "sum by (httpmgr_client, server_address) "
                f"({rate(TLS_HANDSHAKES, scope=NOT_MANAGED)})",
                "{{httpmgr_client}} {{server_address}}",
            )
        ],
        width=18,
    )
    share = (
        stat_panel(
            "Clients not pooled: share of handshakes",
            "Share of all TLS handshakes made by clients httpmgr did not build (needs "
            "HTTPMGR_TELEMETRY_ALL_CLIENTS=1); healthy is close to 0%.",
            "percentunit",
            target(
                f"sum({rate(TLS_HANDSHAKES, scope=NOT_MANAGED)})"
                f" / sum({rate(TLS_HANDSHAKES, scope=SCOPE)})",
                "not pooled share",
            ),
        )
        .min(0)
        .max(1)
        .thresholds(thresholds("green", (0.1, "yellow"), (0.5, "red")))
    )
    return [handshakes, share]


# --- dashboard -----------------------------------------------------------------------


def variables() -> list[dashboard_builder.DatasourceVariable | dashboard_builder.QueryVariable]:
    all_selected = dashboard_model.VariableOption(selected=True, text=["All"], value=["$__all"])

    def multi_query(name: str, label: str, query: str) -> dashboard_builder.QueryVariable:
        return (
            dashboard_builder.QueryVariable(name)
            .label(label)
            .datasource(datasource())
            .query(query)
            .definition(query)
            .refresh(dashboard_model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dashboard_model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(all_selected)
        )

    return [
        # ``type()`` on the datasource variable sets the plugin id (stored as ``query``).
        dashboard_builder.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        multi_query(
            "client",
            "Client kind",
            f"label_values({REQUESTS}, httpmgr_client)",
        ),
        multi_query(
            "host",
            "Host",
            f'label_values({REQUESTS}{{httpmgr_client=~"$client"}}, server_address)',
        ),
    ]


def build() -> dict[str, Any]:
    """The dashboard as a JSON-ready dict (encoded with the SDK's JSON encoder)."""
    ids = itertools.count(1)
    board = (
        dashboard_builder.Dashboard(TITLE)
        .uid(UID)
        .description("Proves that httpmgr's connection pooling works: reuse, pool, set-up cost.")
        .tags(["httpmgr", "http", "pooling"])
        .editable()
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(dashboard_model.DashboardCursorSync.CROSSHAIR)
    )
    for variable in variables():
        board = board.with_variable(variable)

    sections: list[tuple[str, Sequence[AnyPanel]]] = [
        ("Pooling", pooling_panels()),
        ("Pool occupancy", occupancy_panels()),
        ("Latency of set-up", setup_latency_panels()),
        ("Lifetime, retries, errors", lifetime_panels()),
        ("Clients not pooled", not_pooled_panels()),
    ]
    for title, panels in sections:
        # Rows are expanded: their panels follow them at the top level, which lets the
        # builder lay them out on the grid.
        board = board.with_row(row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))

    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return data


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 if {OUTPUT.name} differs from what this script generates",
    )
    args = parser.parse_args(argv)

    expected = render()
    if not args.check:
        OUTPUT.write_text(expected, encoding="utf-8")
        print(f"wrote {OUTPUT}")
        return 0

    try:
        actual = OUTPUT.read_text(encoding="utf-8")
    except FileNotFoundError:
        print(f"{OUTPUT} is missing; run: python dashboards/generate.py", file=sys.stderr)
        return 1
    if actual == expected:
        return 0

    diff = list(
        difflib.unified_diff(
            actual.splitlines(),
            expected.splitlines(),
            fromfile=f"{OUTPUT.name} (on disk)",
            tofile=f"{OUTPUT.name} (generated)",
            lineterm="",
        )
    )
    shown = 40
    print(f"{OUTPUT} is out of date; run: python dashboards/generate.py", file=sys.stderr)
    print("\n".join(diff[:shown]), file=sys.stderr)
    if len(diff) > shown:
        print(f"... ({len(diff) - shown} more diff lines)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
