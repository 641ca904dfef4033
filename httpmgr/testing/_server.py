"""A real HTTPS/1.1 server on 127.0.0.1 that counts what the client really did.

It runs an asyncio loop in a thread of its own, parses with h11, and answers each
request in one write with TCP_NODELAY (Python's ``http.server`` writes headers and
body separately and stalls every keep-alive request on delayed ACKs). It counts TCP
accepts and TLS handshakes *server-side*, the ground truth for every client-side
figure, and injects faults on request.

Paths: ``/`` (200 "ok"; ``?size=N`` for N bytes), ``/delay/<seconds>``,
``/status/<code>``, ``/echo`` (the request body back), ``/close`` (answers with
``Connection: close`` then closes), ``/reset`` (sends part of the body, then a TCP RST).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import h11

__all__ = ["Faults", "HTTPSTestServer", "ServerStats", "unused_port"]

RECENT = 1000  # requests whose path and headers ServerStats keeps
_IDLE = b"<idle timeout>"  # _read_request's marker for "closed by the keep-alive timer"


@dataclass
class Faults:
    """Misbehaviour, changeable while the server runs.

    Args:
        keepalive_timeout: Close a connection that has been idle this many seconds.
        max_requests: Answer this many requests on a connection, the last one with
            ``Connection: close``, then close it.
        drop_after: Answer this many requests on a connection; read the next one and
            drop the connection without a response (a keep-alive race, httpx #2983).
        drop_mode: ``"close"`` (FIN) or ``"reset"`` (RST) for ``drop_after``.
        delay: Seconds to wait before every response.
    """

    keepalive_timeout: float | None = None
    max_requests: int | None = None
    drop_after: int | None = None
    drop_mode: Literal["close", "reset"] = "close"
    delay: float = 0.0


@dataclass
class ServerStats:
    """What the server saw; read it from any thread."""

    accepts: int = 0
    handshakes: int = 0
    handshake_failures: int = 0
    requests: int = 0
    open_connections: int = 0
    max_open_connections: int = 0
    closed_idle: int = 0  # closed by the keep-alive timeout
    dropped: int = 0  # dropped by drop_after
    # the most recent requests only: a soak must not measure the server's own memory
    paths: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))
    headers: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=RECENT))

    def reset(self) -> None:
        fresh = ServerStats()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))


def unused_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class HTTPSTestServer:
    """Start with ``with HTTPSTestServer() as server:``; ``server.url`` is its base URL.

    Args:
        tls: Serve HTTPS (default) or plain HTTP.
        hostnames: Names on the server certificate.
        faults: Initial :class:`Faults`.
        ca: A ``trustme.CA`` to issue the certificate (another server's ``.ca``, so one
            client context trusts both); a fresh one by default.
    """

    def __init__(
        self,
        *,
        tls: bool = True,
        hostnames: tuple[str, ...] = ("127.0.0.1", "localhost"),
        faults: Faults | None = None,
        ca: Any = None,
    ) -> None:
        import trustme  # test/demo dependency, imported only here

        self.faults = faults or Faults()
        self.stats = ServerStats()
        self.tls = tls
        self.ca = self._ca = ca or trustme.CA()
        self._cert = self._ca.issue_cert(*hostnames)
        self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(self._server_ctx)
        self._server_ctx.set_alpn_protocols(["http/1.1"])
        self._dir = tempfile.TemporaryDirectory(prefix="httpmgr-server-")
        self.ca_path = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_path)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> HTTPSTestServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        return self

    async def _start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(512)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = asyncio.ensure_future(self._accept(listener))

    async def _accept(self, listener: socket.socket) -> None:
        # Accept by hand (not asyncio.start_server) to count TCP accepts apart from
        # TLS handshakes, including those that fail.
        loop = asyncio.get_running_loop()
        while True:
            sock, _ = await loop.sock_accept(listener)
            self.stats.accepts += 1
            task = asyncio.ensure_future(self._handle(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """Stop listening and drop every connection (restart() listens again)."""
        if self._listener is not None:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()

    async def _stop(self) -> None:
        assert self._listener is not None
        assert self._acceptor is not None
        self._acceptor.cancel()
        self._listener.close()
        self._listener = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._acceptor, *self._tasks, return_exceptions=True)

    def restart(self) -> None:
        """Drop every connection at once, as a server restart does.

        The listening socket stays bound: releasing the port, even briefly, would let
        another process on the machine (a parallel test worker) take it.
        """
        asyncio.run_coroutine_threadsafe(self._drop_all(), self._loop).result()

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._dir.cleanup()

    def __enter__(self) -> HTTPSTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what clients need ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this server's CA."""
        return ssl.create_default_context(cafile=self.ca_path)

    @contextmanager
    def faulty(self, **faults: Any) -> Iterator[Faults]:
        """Apply ``faults`` for the duration of a ``with`` block."""
        saved = Faults(**vars(self.faults))
        for name, value in faults.items():
            setattr(self.faults, name, value)
        try:
            yield self.faults
        finally:
            self.faults = saved

    # -- serving ----------------------------------------------------------------------

    async def _handle(self, sock: socket.socket) -> None:
        stats = self.stats
        loop = asyncio.get_running_loop()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stats.open_connections += 1
        stats.max_open_connections = max(stats.max_open_connections, stats.open_connections)
        reader = asyncio.StreamReader(limit=2**20)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                sock,
                ssl=self._server_ctx if self.tls else None,
                ssl_handshake_timeout=10 if self.tls else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError):
            stats.open_connections -= 1
            stats.handshake_failures += 1
            sock.close()
            return
        except BaseException:  # cancelled (stop or restart) during the handshake
            stats.open_connections -= 1
            sock.close()
            raise
        if self.tls:
            stats.handshakes += 1
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, h11.ProtocolError):
            writer.transport.abort()
        finally:
            stats.open_connections -= 1
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        served = 0
        while True:
            request, body = await self._read_request(conn, reader)
            if request is None:
                if body == _IDLE:
                    self.stats.closed_idle += 1
                writer.close()
                return
            faults = self.faults
            if faults.drop_after is not None and served >= faults.drop_after:
                self.stats.dropped += 1
                if faults.drop_mode == "reset":
                    _rst(writer)
                else:
                    writer.close()
                return
            self.stats.requests += 1
            target = request.target.decode("latin-1")
            self.stats.paths.append(target)
            self.stats.headers.append(
                {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers}
            )
            served += 1
            last = faults.max_requests is not None and served >= faults.max_requests
            if faults.delay:
                await asyncio.sleep(faults.delay)
            keep_open = await self._respond(conn, writer, target, body, last)
            if not keep_open:
                return
            conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                timeout = self.faults.keepalive_timeout if request is None else 10
                try:
                    data = await asyncio.wait_for(reader.read(65536), timeout)
                except TimeoutError:
                    return None, _IDLE
                if not data and request is None:
                    return None, b""
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            else:  # ConnectionClosed, or a client that went away
                return None, b""

    async def _respond(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        target: str,
        body: bytes,
        last: bool,
    ) -> bool:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        status, payload = 200, b"ok"
        if path.startswith("/delay/"):
            await asyncio.sleep(float(path.rsplit("/", 1)[1]))
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        elif path == "/echo":
            payload = body
        elif path == "/close":
            last = True
        if "size" in query:
            payload = b"x" * int(query["size"][0])
        headers = [("content-type", "text/plain"), ("content-length", str(len(payload)))]
        if last:
            headers.append(("connection", "close"))
        head = conn.send(h11.Response(status_code=status, headers=headers))
        assert head is not None
        if path == "/reset":
            writer.write(head + payload[: len(payload) // 2])
            await writer.drain()
            _rst(writer)
            return False
        data = conn.send(h11.Data(data=payload)) or b""
        end = conn.send(h11.EndOfMessage()) or b""
        writer.write(head + data + end)
        await writer.drain()
        if last:
            writer.close()
            return False
        return True


def _rst(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
