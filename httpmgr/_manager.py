"""The manager: builds, shares and closes every client, for threads, loops and forks.

- Sync httpx clients are shared by every thread of the process.
- Async clients (httpx and aiohttp) belong to the event loop that is running when
  they are asked for, and are closed when that loop finishes (``asyncio.run`` ends).
- Clients that agree on their pool settings share one pool; the timeouts live on the
  client, so ``timeout=5`` and ``timeout=30`` never open connections twice.
- In a forked child every pool starts empty: the parent's sockets are never touched.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Hashable, Mapping, Sequence
from typing import Any, Protocol

import aiohttp
import httpx

from ._aiohttp import ManagedConnector, ManagedSession
from ._aiohttp import connector as build_connector
from ._events import ClientClosed, ClientCreated, ClientKind, ClientRecreated, EventSink
from ._httpx import AsyncPooledTransport, ManagedAsyncClient, ManagedClient, PooledTransport
from ._log import log_event
from ._probe import Probe
from ._settings import Settings, resolve_settings

__all__ = ["ClientHooks", "HttpClientManager"]

_log = logging.getLogger("httpmgr")


class ClientHooks(Protocol):
    """What the manager calls as it builds clients (request-span instrumentation)."""

    def httpx_client(self, client: httpx.Client | httpx.AsyncClient, new_pool: bool) -> None:
        """A managed httpx client was built (``new_pool``: over a pool just created)."""

    def aiohttp_trace_configs(self) -> Sequence[aiohttp.TraceConfig]:
        """Trace configs to give a managed aiohttp session being built."""
        ...


class _LoopPools:
    """The async clients of one event loop."""

    def __init__(self) -> None:
        self.transports: dict[Hashable, AsyncPooledTransport] = {}
        self.clients: dict[Settings, ManagedAsyncClient] = {}
        self.connectors: dict[Hashable, ManagedConnector] = {}
        self.sessions: dict[Settings, ManagedSession] = {}
        self.guard: AsyncGenerator[None, None] | None = None

    async def aclose(self) -> None:
        clients, sessions = list(self.clients.values()), list(self.sessions.values())
        transports, connectors = list(self.transports.values()), list(self.connectors.values())
        self.clients.clear()
        self.sessions.clear()
        self.transports.clear()
        self.connectors.clear()
        for client in clients:
            await client._httpmgr_aclose()
        for session in sessions:
            await session._httpmgr_aclose()
        for transport in transports:
            await transport.aclose()
        for connector in connectors:
            await connector.close()


class HttpClientManager:
    """Hands out shared, pooled clients built from one :class:`Settings`.

    Args:
        settings: The defaults for every client; ``HTTPMGR_*`` variables and keyword
            arguments to the ``get_*`` methods are layered on top.
        environ: Where ``HTTPMGR_*`` variables are read (``os.environ`` by default),
            once, at first use.
        sink: Receives every probe event (the telemetry recorder plugs in here).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        sink: EventSink | None = None,
    ) -> None:
        self._base = settings or Settings()
        self._environ = environ
        self.probes: dict[ClientKind, Probe] = {
            kind: Probe(kind, sink) for kind in ("httpx", "httpx_async", "aiohttp")
        }
        self.hooks: ClientHooks | None = None
        self._atexit_registered = False
        self._init_state()
        _MANAGERS.add(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._defaults: Settings | None = None
        self._resolved: dict[Hashable, Settings] = {}
        self._ssl: dict[Hashable, ssl.SSLContext] = {}
        self._transports: dict[Hashable, PooledTransport] = {}
        self._clients: dict[Settings, ManagedClient] = {}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPools] = (
            weakref.WeakKeyDictionary()
        )

    # -- telemetry attachment ---------------------------------------------------------

    def set_sink(self, sink: EventSink | None) -> None:
        """Send every client kind's events to ``sink`` (``None`` to stop)."""
        for probe in self.probes.values():
            probe.sink = sink

    @property
    def sink(self) -> EventSink | None:
        return self.probes["httpx"].sink

    def _hook_httpx(self, client: httpx.Client | httpx.AsyncClient, new_pool: bool) -> None:
        hooks = self.hooks
        if hooks is not None:
            try:
                hooks.httpx_client(client, new_pool)
            except Exception:  # instrumentation must not stop the client being built
                _log.exception("httpmgr: instrumenting an httpx client failed")

    def _aiohttp_trace_configs(self) -> Sequence[aiohttp.TraceConfig]:
        hooks = self.hooks
        if hooks is None:
            return ()
        try:
            return hooks.aiohttp_trace_configs()
        except Exception:
            _log.exception("httpmgr: instrumenting an aiohttp session failed")
            return ()

    # -- settings ---------------------------------------------------------------------

    def settings(self, timeout: float | None = None, **overrides: Any) -> Settings:
        """The settings a ``get_*(timeout, **overrides)`` call resolves to."""
        try:
            key: Hashable = (timeout, tuple(sorted(overrides.items())))
            hash(key)
        except TypeError:
            key = None
        if key is not None and (found := self._resolved.get(key)) is not None:
            return found
        if self._defaults is None:
            environ = os.environ if self._environ is None else self._environ
            self._defaults = resolve_settings(self._base, environ, {})
        if timeout is not None:
            overrides["timeout"] = timeout
        settings = resolve_settings(self._defaults, {}, overrides) if overrides else self._defaults
        if key is not None:
            self._resolved[key] = settings
        return settings

    def _ssl_context(self, settings: Settings) -> ssl.SSLContext:
        key = (settings.verify, settings.ca_bundle, settings.trust_env)
        ctx = self._ssl.get(key)
        if ctx is None:
            ctx = self._ssl[key] = settings.ssl_context()
            if settings.http2:
                ctx.set_alpn_protocols(["h2", "http/1.1"])
        return ctx

    # -- sync httpx -------------------------------------------------------------------

    def get_http_client(self, timeout: float | None = None, **settings: Any) -> ManagedClient:
        """The shared ``httpx.Client`` for these settings (created on first use)."""
        resolved = self.settings(timeout, **settings)
        client = self._clients.get(resolved)
        if client is not None and not client.is_closed:
            return client
        with self._lock:
            client = self._clients.get(resolved)
            if client is not None and not client.is_closed:
                return client
            transport = self._transports.get(resolved.pool_key)
            new_pool = transport is None
            if transport is None:
                transport = PooledTransport(
                    resolved, self._ssl_context(resolved), self.probes["httpx"]
                )
                self._transports[resolved.pool_key] = transport
                self._created("httpx", transport)
            new = ManagedClient(resolved, transport)
            self._hook_httpx(new, new_pool)
            self._clients[resolved] = new
            if client is not None:
                self._recreated("httpx", transport)
            self._register_atexit()
            return new

    # -- async (per event loop) -------------------------------------------------------

    async def _loop_pools(self) -> _LoopPools:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "httpmgr async clients must be requested from a running asyncio event loop"
            ) from None
        pools = self._loops.get(loop)
        if pools is None:
            with self._lock:
                pools = self._loops.get(loop)
                if pools is None:
                    pools = self._loops[loop] = _LoopPools()
                    self._register_atexit()
        if pools.guard is None:
            # An async generator left suspended is finalised by the loop's
            # shutdown_asyncgens() (which asyncio.run and asyncio.Runner call) while the
            # loop still runs: the one moment we can close this loop's clients cleanly.
            pools.guard = _close_when_loop_ends(self, loop, pools)
            await pools.guard.asend(None)
        return pools

    async def get_async_http_client(
        self, timeout: float | None = None, **settings: Any
    ) -> ManagedAsyncClient:
        """The shared ``httpx.AsyncClient`` of the running event loop for these settings."""
        resolved = self.settings(timeout, **settings)
        pools = await self._loop_pools()
        client = pools.clients.get(resolved)
        if client is not None and not client.is_closed:
            return client
        transport = pools.transports.get(resolved.pool_key)
        new_pool = transport is None
        if transport is None:
            probe = self.probes["httpx_async"]
            transport = AsyncPooledTransport(resolved, self._ssl_context(resolved), probe)
            pools.transports[resolved.pool_key] = transport
            self._created("httpx_async", transport)
        new = pools.clients[resolved] = ManagedAsyncClient(resolved, transport)
        self._hook_httpx(new, new_pool)
        if client is not None:
            self._recreated("httpx_async", transport)
        return new

    async def get_aiohttp_session(
        self, timeout: float | None = None, **settings: Any
    ) -> ManagedSession:
        """The shared ``aiohttp.ClientSession`` of the running event loop for these settings."""
        resolved = self.settings(timeout, **settings)
        pools = await self._loop_pools()
        session = pools.sessions.get(resolved)
        if session is not None and not session.closed:
            return session
        conn = pools.connectors.get(resolved.pool_key)
        if conn is None or conn.closed:
            probe = self.probes["aiohttp"]
            conn = build_connector(resolved, self._ssl_context(resolved), probe)
            pools.connectors[resolved.pool_key] = conn
            self._created("aiohttp", conn)
        new = pools.sessions[resolved] = ManagedSession(
            resolved, conn, self._aiohttp_trace_configs()
        )
        if session is not None:
            self._recreated("aiohttp", conn)
        return new

    # -- closing ----------------------------------------------------------------------

    def close_all(self) -> None:
        """Close the sync clients, and the async ones of loops that are not running.

        Async clients of a running loop are closed by ``await aclose_all()`` in that
        loop, or when the loop finishes.
        """
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            transports, self._transports = list(self._transports.items()), {}
            loops = list(self._loops.items())
        for client in clients:
            client._httpmgr_close()
        for _, transport in transports:
            transport.close()
            self._closed("httpx", transport)
        for loop, pools in loops:
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(self._aclose_loop(loop, pools))

    async def aclose_all(self) -> None:
        """Close the running loop's async clients and every sync client."""
        loop = asyncio.get_running_loop()
        pools = self._loops.get(loop)
        if pools is not None:
            await self._aclose_loop(loop, pools)
        self.close_all()

    async def _aclose_loop(self, loop: asyncio.AbstractEventLoop, pools: _LoopPools) -> None:
        with self._lock:
            if self._loops.get(loop) is pools:
                del self._loops[loop]
        kinds: list[tuple[ClientKind, object]] = [
            *(("httpx_async", t) for t in pools.transports.values()),
            *(("aiohttp", c) for c in pools.connectors.values()),
        ]
        guard, pools.guard = pools.guard, None
        await pools.aclose()
        for kind, pool in kinds:
            self._closed(kind, pool)
        if guard is not None:
            await guard.aclose()

    # -- lifecycle plumbing -----------------------------------------------------------

    def _created(self, kind: ClientKind, pool: object) -> None:
        self.probes[kind].emit(ClientCreated(kind, id(pool)))
        log_event(logging.INFO, "httpmgr.client_created", client=kind, pool_id=id(pool))

    def _recreated(self, kind: ClientKind, pool: object) -> None:
        self.probes[kind].emit(ClientRecreated(kind, id(pool), "closed_by_user"))
        log_event(
            logging.WARNING,
            "httpmgr.client_recreated",
            client=kind,
            pool_id=id(pool),
            reason="closed_by_user",
        )

    def _closed(self, kind: ClientKind, pool: object) -> None:
        self.probes[kind].emit(ClientClosed(kind, id(pool)))
        log_event(logging.INFO, "httpmgr.client_closed", client=kind, pool_id=id(pool))

    def _register_atexit(self) -> None:
        if not self._atexit_registered:
            self._atexit_registered = True
            atexit.register(_close_at_exit, weakref.ref(self))

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's pools without touching their sockets."""
        # Closing would send TLS close_notify on sockets the parent still uses, and
        # letting them be garbage-collected would warn: keep them, unused, for good.
        _ORPHANS.append((self._clients, self._transports, dict(self._loops)))
        self._atexit_registered = False
        self._init_state()


async def _close_when_loop_ends(
    manager: HttpClientManager, loop: asyncio.AbstractEventLoop, pools: _LoopPools
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if pools.guard is not None:  # not already closed by aclose_all()
            pools.guard = None
            await manager._aclose_loop(loop, pools)


def _close_at_exit(ref: weakref.ref[HttpClientManager]) -> None:
    manager = ref()
    if manager is not None:
        manager.close_all()


_MANAGERS: weakref.WeakSet[HttpClientManager] = weakref.WeakSet()
_ORPHANS: list[object] = []


def _after_fork_in_child() -> None:
    for manager in list(_MANAGERS):
        manager._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
