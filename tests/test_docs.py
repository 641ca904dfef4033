"""The documentation names everything the code emits."""

from __future__ import annotations

from pathlib import Path

import pytest

from httpmgr import _names as n

DOC = (Path(__file__).parent.parent / "docs" / "telemetry.md").read_text()
NAMES = {k: v for k, v in vars(n).items() if k.isupper() and isinstance(v, str)}


@pytest.mark.parametrize("constant", sorted(NAMES))
def test_every_name_is_documented(constant: str) -> None:
    if constant == "INSTRUMENTATION_SCOPE":
        return
    assert NAMES[constant] in DOC, f"{constant}={NAMES[constant]!r} missing from telemetry.md"


def test_prometheus_names_are_documented() -> None:
    for metric in (n.REQUESTS, n.CONNECTIONS_OPENED, n.TLS_HANDSHAKES, n.RETRIES):
        assert metric.replace(".", "_") + "_total" in DOC
    for metric in (n.CONNECT_DURATION, n.TLS_HANDSHAKE_DURATION, n.CONNECTION_DURATION):
        assert metric.replace(".", "_") + "_seconds" in DOC
