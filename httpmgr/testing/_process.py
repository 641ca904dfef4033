"""The HTTPS test server in a process of its own.

Benchmarks and the demo measure the client's CPU time: a server in the same process
would be counted with it. :class:`ServerProcess` runs :class:`HTTPSTestServer` in a
child interpreter (``python -m httpmgr.testing._process``) and relays its counters over
the child's standard input and output, one JSON line per command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from ._server import HTTPSTestServer

__all__ = ["ServerProcess"]


class ServerProcess:
    """``with ServerProcess() as server:`` — ``server.url``, ``server.ca_path``, ``stats()``."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "httpmgr.testing._process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        self.url: str = hello["url"]
        self.ca_path: str = hello["ca_path"]

    def _read(self) -> Any:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the test server process exited")
        return json.loads(line)

    def _call(self, command: str, **args: Any) -> Any:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"command": command, **args}) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def stats(self) -> dict[str, int]:
        """Counters as the server saw them: accepts, handshakes, requests, ..."""
        stats: dict[str, int] = self._call("stats")
        return stats

    def reset(self) -> None:
        self._call("reset")

    def set_faults(self, **faults: Any) -> None:
        self._call("faults", faults=faults)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._call("stop")
        self._proc.wait(10)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _serve() -> None:
    with HTTPSTestServer() as server:
        print(json.dumps({"url": server.url, "ca_path": server.ca_path}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            reply: Any = None
            if request["command"] == "stop":
                print("null", flush=True)
                return
            if request["command"] == "reset":
                server.stats.reset()
            elif request["command"] == "stats":
                reply = {k: v for k, v in vars(server.stats).items() if isinstance(v, int)}
            elif request["command"] == "faults":
                for name, value in request["faults"].items():
                    setattr(server.faults, name, value)
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    _serve()
