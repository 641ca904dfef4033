"""Every-client mode: measure all httpx clients of the process, not only managed ones.

So that a dashboard shows which code still opens a connection per request: their
events carry ``httpmgr.client.managed=false``.
"""

from __future__ import annotations

import typing

import httpcore
import httpx

from ._events import Endpoint
from ._httpx import AsyncPooledTransport, PooledTransport, Scope, _snapshot
from ._httpx_backend import AsyncProbedBackend, BackendState, ProbedBackend
from ._probe import Probe, current_exchange

__all__ = ["EveryClient"]


class _UnmanagedView:
    """Pool view of an httpx transport that httpmgr did not build."""

    def __init__(self, probe: Probe, pool: typing.Any) -> None:
        self.probe = probe
        self.pool = pool
        self.max_connections: int = pool._max_connections

    def snapshot(self) -> list[tuple[Endpoint, str | None, bool]]:
        return _snapshot(self.probe, self.pool.connections)


def _wrap_close(close: typing.Any, is_async: bool) -> typing.Any:
    """Mark the backend as closing first, so its connections close as "client_closed"."""

    def mark(self: typing.Any) -> None:
        state = getattr(self, "_httpmgr_state", None)
        if state is not None:
            state.closing = True

    if is_async:

        async def aclose(self: typing.Any, *args: typing.Any) -> None:
            mark(self)
            await close(self, *args)

        return aclose

    def sync_close(self: typing.Any, *args: typing.Any) -> None:
        mark(self)
        close(self, *args)

    return sync_close


class EveryClient:
    """Measures every ``httpx`` client of the process, not only managed ones.

    Patches ``HTTPTransport`` / ``AsyncHTTPTransport`` so that each one built from now
    on (without a proxy) has a probed network backend; their events carry
    ``managed=False``. :meth:`disable` restores the classes.
    """

    def __init__(self, sink: typing.Any) -> None:
        self.probes = {
            "httpx": Probe("httpx", sink, managed=False),
            "httpx_async": Probe("httpx_async", sink, managed=False),
        }
        self._saved: dict[tuple[type, str], typing.Any] = {}

    def enable(self) -> None:
        if self._saved:
            return
        for cls, kind, handle, closers, backend, pool_type in (
            (
                httpx.HTTPTransport,
                "httpx",
                "handle_request",
                ("close", "__exit__"),
                ProbedBackend,
                httpcore.ConnectionPool,
            ),
            (
                httpx.AsyncHTTPTransport,
                "httpx_async",
                "handle_async_request",
                ("aclose", "__aexit__"),
                AsyncProbedBackend,
                httpcore.AsyncConnectionPool,
            ),
        ):
            self._saved[(cls, "__init__")] = cls.__init__
            self._saved[(cls, handle)] = getattr(cls, handle)
            for closer in closers:
                self._saved[(cls, closer)] = original = getattr(cls, closer)
                setattr(cls, closer, _wrap_close(original, kind == "httpx_async"))
            probe = self.probes[kind]
            cls.__init__ = self._wrap_init(cls.__init__, probe, backend, pool_type)  # type: ignore[method-assign]
            wrapper = (
                self._wrap_async_handle if handle == "handle_async_request" else self._wrap_handle
            )
            setattr(cls, handle, wrapper(getattr(cls, handle)))

    def disable(self) -> None:
        for (cls, name), original in self._saved.items():
            setattr(cls, name, original)
        self._saved.clear()

    @staticmethod
    def _wrap_init(
        init: typing.Any, probe: Probe, backend: typing.Any, pool_type: typing.Any
    ) -> typing.Callable[..., None]:
        def __init__(self: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> None:
            init(self, *args, **kwargs)
            if isinstance(self, (PooledTransport, AsyncPooledTransport)):
                return  # managed: probed already
            pool: typing.Any = getattr(self, "_pool", None)
            if type(pool) is pool_type:  # not behind a proxy
                state = BackendState(probe, pool._keepalive_expiry or 0.0)
                pool._network_backend = backend(state)
                self._httpmgr_state = state
                self._httpmgr_probe = probe
                self._httpmgr_view = _UnmanagedView(probe, pool)
                probe.pools.add(self._httpmgr_view)

        return __init__

    @staticmethod
    def _wrap_handle(handle: typing.Any) -> typing.Callable[..., httpx.Response]:
        def handle_request(self: typing.Any, request: httpx.Request) -> httpx.Response:
            probe = getattr(self, "_httpmgr_probe", None)
            if probe is None or current_exchange.get() is not None:
                return typing.cast(httpx.Response, handle(self, request))
            with Scope(probe, request):
                return typing.cast(httpx.Response, handle(self, request))

        return handle_request

    @staticmethod
    def _wrap_async_handle(handle: typing.Any) -> typing.Callable[..., typing.Any]:
        async def handle_async_request(self: typing.Any, request: httpx.Request) -> httpx.Response:
            probe = getattr(self, "_httpmgr_probe", None)
            if probe is None or current_exchange.get() is not None:
                return typing.cast(httpx.Response, await handle(self, request))
            with Scope(probe, request):
                return typing.cast(httpx.Response, await handle(self, request))

        return handle_async_request
