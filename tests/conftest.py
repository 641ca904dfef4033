from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The stable HTTP semantic conventions (url.full, ...): what httpmgr sets up itself, and
# what users of opentelemetry-instrument are told to set. Read once per process by the
# OpenTelemetry instrumentations, so set before any test instruments anything.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

from httpmgr import HttpClientManager, Settings
from httpmgr.testing import HTTPSTestServer

from .drivers import DRIVERS, KINDS, Driver
from .otel import Telemetry
from .otlp_receiver import OTLPReceiver


@pytest.fixture
def server() -> Iterator[HTTPSTestServer]:
    with HTTPSTestServer() as srv:
        yield srv


@pytest.fixture
def manager(server: HTTPSTestServer) -> Iterator[HttpClientManager]:
    """A manager of our own (never the process default) that trusts the test server."""
    mgr = HttpClientManager(Settings(verify=server.client_ssl_context()), environ={})
    yield mgr
    mgr.close_all()


@pytest.fixture(params=KINDS)
def driver(
    request: pytest.FixtureRequest, manager: HttpClientManager, server: HTTPSTestServer
) -> Iterator[Driver]:
    drv = DRIVERS[request.param](manager, server.url)
    yield drv
    drv.close()


@pytest.fixture
def telemetry(manager: HttpClientManager) -> Iterator[Telemetry]:
    """The manager's telemetry, recorded with in-memory exporters."""
    tel = Telemetry()
    tel.instrument(manager)
    yield tel
    manager.close_all()
    tel.shutdown()


@pytest.fixture
def otlp() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    yield receiver
    receiver.close()
