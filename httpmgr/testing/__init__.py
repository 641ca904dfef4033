"""Test helpers: a real HTTPS server on 127.0.0.1 that counts handshakes server-side.

Needs the ``testing`` extra (``trustme``).
"""

from ._process import ServerProcess
from ._server import Faults, HTTPSTestServer, ServerStats, unused_port

__all__ = ["Faults", "HTTPSTestServer", "ServerProcess", "ServerStats", "unused_port"]
