"""The process-wide default manager and the module-level functions over it."""

from __future__ import annotations

import os
import threading
from typing import Any

import aiohttp
import httpx

from ._manager import HttpClientManager

__all__ = [
    "aclose_all_http_clients",
    "close_all_http_clients",
    "default_manager",
    "get_aiohttp_session",
    "get_async_http_client",
    "get_http_client",
]

_default: HttpClientManager | None = None
_default_lock = threading.Lock()


def default_manager() -> HttpClientManager:
    """The manager the module-level functions use: one per process, made on first use."""
    global _default
    manager = _default
    if manager is None:
        with _default_lock:
            if _default is None:
                manager = HttpClientManager()
                if os.environ.get("HTTPMGR_TELEMETRY", "").strip():
                    _configure_telemetry(manager)
                _default = manager
            manager = _default
    return manager


def _configure_telemetry(manager: HttpClientManager) -> None:
    try:
        from .telemetry import configure_from_env
    except ImportError as exc:
        raise ImportError(
            f"HTTPMGR_TELEMETRY is set but OpenTelemetry is not installed ({exc}); "
            "install httpmgr[otel]"
        ) from exc
    configure_from_env(manager)


def get_http_client(timeout: float | None = None, **settings: Any) -> httpx.Client:
    """The shared ``httpx.Client``.

    Args:
        timeout: Seconds for connect, read, write and pool wait; ``None`` for the
            configured default. Clients with different timeouts share one pool.
        **settings: Any other :class:`~httpmgr.Settings` field.
    """
    return default_manager().get_http_client(timeout, **settings)


async def get_async_http_client(timeout: float | None = None, **settings: Any) -> httpx.AsyncClient:
    """The shared ``httpx.AsyncClient`` of the running event loop (see :func:`get_http_client`)."""
    return await default_manager().get_async_http_client(timeout, **settings)


async def get_aiohttp_session(
    timeout: float | None = None, **settings: Any
) -> aiohttp.ClientSession:
    """The shared ``aiohttp.ClientSession`` of the running event loop."""
    return await default_manager().get_aiohttp_session(timeout, **settings)


def close_all_http_clients() -> None:
    """Close every sync client (and async clients of loops that are not running)."""
    if _default is not None:
        _default.close_all()


async def aclose_all_http_clients() -> None:
    """Close the running loop's async clients and every sync client."""
    if _default is not None:
        await _default.aclose_all()
