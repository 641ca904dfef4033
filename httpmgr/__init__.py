"""httpmgr: persistent, pooled HTTP clients, and telemetry that proves the pooling works."""

from ._api import (
    aclose_all_http_clients,
    close_all_http_clients,
    default_manager,
    get_aiohttp_session,
    get_async_http_client,
    get_http_client,
)
from ._logconfig import RedactURLs, add_trace_context, configure_logging
from ._manager import HttpClientManager
from ._settings import Settings, SettingsError

__all__ = [
    "HttpClientManager",
    "RedactURLs",
    "Settings",
    "SettingsError",
    "aclose_all_http_clients",
    "add_trace_context",
    "close_all_http_clients",
    "configure_logging",
    "default_manager",
    "get_aiohttp_session",
    "get_async_http_client",
    "get_http_client",
]

__version__ = "0.1.0"
