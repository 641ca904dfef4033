"""One interface over the three client kinds, so one suite covers them all.

Each driver asks its manager for the client the way user code does and performs
requests with it; the async drivers keep one event loop (an ``asyncio.Runner``) for
the whole test, as an application would.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
import httpx

from httpmgr import HttpClientManager
from httpmgr._events import ClientKind

T = TypeVar("T")

KINDS: tuple[ClientKind, ...] = ("httpx", "httpx_async", "aiohttp")


class Driver(ABC):
    kind: ClientKind

    def __init__(self, manager: HttpClientManager, base_url: str) -> None:
        self.manager = manager
        self.base_url = base_url

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str = "/", **settings: Any) -> str:
        status, body = self.request("GET", path, **settings)
        assert status == 200, (status, body)
        return body

    @abstractmethod
    def request(
        self, method: str, path: str = "/", content: bytes | None = None, **settings: Any
    ) -> tuple[int, str]: ...

    @abstractmethod
    def client(self, **settings: Any) -> object:
        """The managed client object for these settings."""

    @abstractmethod
    def concurrent(self, n: int, path: str = "/", **settings: Any) -> list[int]:
        """``n`` requests at once; their status codes."""

    @abstractmethod
    def close_like_user_code(self, **settings: Any) -> None:
        """What leftover code does: use the shared client as a context manager."""

    @abstractmethod
    def close_for_real(self, **settings: Any) -> None:
        """Close the client object itself, bypassing the manager (a "broken" client)."""

    def settle(self) -> None:  # noqa: B027 - a no-op for the sync client
        """Let callbacks the client left pending run (async kinds close lazily)."""

    def close(self) -> None:
        self.manager.close_all()


class SyncDriver(Driver):
    kind: ClientKind = "httpx"

    def client(self, **settings: Any) -> httpx.Client:
        return self.manager.get_http_client(**settings)

    def request(
        self, method: str, path: str = "/", content: bytes | None = None, **settings: Any
    ) -> tuple[int, str]:
        r = self.client(**settings).request(method, self.url(path), content=content)
        return r.status_code, r.text

    _pool: ThreadPoolExecutor | None = None

    def concurrent(self, n: int, path: str = "/", **settings: Any) -> list[int]:
        # one set of worker threads for the whole test, as an application would have
        if self._pool is None or self._pool._max_workers < n:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = ThreadPoolExecutor(n)
        return list(self._pool.map(lambda _: self.request("GET", path, **settings)[0], range(n)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        super().close()

    def close_like_user_code(self, **settings: Any) -> None:
        with self.client(**settings) as c:
            c.get(self.url("/"))

    def close_for_real(self, **settings: Any) -> None:
        httpx.Client.close(self.client(**settings))


class _AsyncDriver(Driver):
    def __init__(self, manager: HttpClientManager, base_url: str) -> None:
        super().__init__(manager, base_url)
        self.runner = asyncio.Runner()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def client(self, **settings: Any) -> object:
        return self.run(self.aclient(**settings))

    @abstractmethod
    async def aclient(self, **settings: Any) -> Any: ...

    @abstractmethod
    async def arequest(
        self, method: str, path: str, content: bytes | None, **settings: Any
    ) -> tuple[int, str]: ...

    def request(
        self, method: str, path: str = "/", content: bytes | None = None, **settings: Any
    ) -> tuple[int, str]:
        return self.run(self.arequest(method, path, content, **settings))

    def concurrent(self, n: int, path: str = "/", **settings: Any) -> list[int]:
        async def many() -> list[int]:
            results = await asyncio.gather(
                *(self.arequest("GET", path, None, **settings) for _ in range(n))
            )
            return [status for status, _ in results]

        return self.run(many())

    def settle(self) -> None:
        self.run(asyncio.sleep(0.05))

    def close(self) -> None:
        self.run(self.manager.aclose_all())
        self.runner.close()


class AsyncDriver(_AsyncDriver):
    kind: ClientKind = "httpx_async"

    async def aclient(self, **settings: Any) -> httpx.AsyncClient:
        return await self.manager.get_async_http_client(**settings)

    async def arequest(
        self, method: str, path: str, content: bytes | None, **settings: Any
    ) -> tuple[int, str]:
        client = await self.aclient(**settings)
        r = await client.request(method, self.url(path), content=content)
        return r.status_code, r.text

    def close_like_user_code(self, **settings: Any) -> None:
        async def leftover() -> None:
            async with await self.aclient(**settings) as c:
                await c.get(self.url("/"))

        self.run(leftover())

    def close_for_real(self, **settings: Any) -> None:
        self.run(httpx.AsyncClient.aclose(self.run(self.aclient(**settings))))


class AiohttpDriver(_AsyncDriver):
    kind: ClientKind = "aiohttp"

    async def aclient(self, **settings: Any) -> aiohttp.ClientSession:
        return await self.manager.get_aiohttp_session(**settings)

    async def arequest(
        self, method: str, path: str, content: bytes | None, **settings: Any
    ) -> tuple[int, str]:
        session = await self.aclient(**settings)
        async with session.request(method, self.url(path), data=content) as r:
            return r.status, await r.text()

    def close_like_user_code(self, **settings: Any) -> None:
        async def leftover() -> None:
            async with await self.aclient(**settings) as s, s.get(self.url("/")) as r:
                await r.read()

        self.run(leftover())

    def close_for_real(self, **settings: Any) -> None:
        self.run(aiohttp.ClientSession.close(self.run(self.aclient(**settings))))


def run_in_threads(fn: Callable[[], object], n: int) -> list[BaseException]:
    """Run ``fn`` on ``n`` threads at once; what they raised, for the test to assert on."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


DRIVERS: dict[ClientKind, type[Driver]] = {
    "httpx": SyncDriver,
    "httpx_async": AsyncDriver,
    "aiohttp": AiohttpDriver,
}
