"""The HTTPS test server in a process of its own.

Benchmarks and the demo measure the client's CPU time: a server in the same process
would be counted with it. This runs :class:`HTTPSTestServer` in a child process
(``spawn``) and relays its counters over a pipe.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

from ._server import HTTPSTestServer

__all__ = ["ServerProcess"]


def _serve(conn: Connection) -> None:
    with HTTPSTestServer() as server:
        conn.send((server.url, server.ca_path))
        while True:
            command, arg = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            if command == "reset":
                server.stats.reset()
                conn.send(None)
            elif command == "stats":
                conn.send({k: v for k, v in vars(server.stats).items() if isinstance(v, int)})
            elif command == "faults":
                for name, value in arg.items():
                    setattr(server.faults, name, value)
                conn.send(None)


class ServerProcess:
    """``with ServerProcess() as server:`` — ``server.url``, ``server.ca_path``, ``stats()``."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        self.url, self.ca_path = self._conn.recv()

    def _call(self, command: str, arg: Any = None) -> Any:
        self._conn.send((command, arg))
        return self._conn.recv()

    def stats(self) -> dict[str, int]:
        """Counters as the server saw them: accepts, handshakes, requests, ..."""
        stats: dict[str, int] = self._call("stats")
        return stats

    def reset(self) -> None:
        self._call("reset")

    def set_faults(self, **faults: Any) -> None:
        self._call("faults", faults)

    def close(self) -> None:
        if self._proc.is_alive():
            self._call("stop")
            self._proc.join(10)
        self._conn.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
