"""A real OTLP/HTTP receiver on 127.0.0.1 that decodes with the official protobuf messages."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def value(v: AnyValue) -> Any:
    field = v.WhichOneof("value")
    return getattr(v, field) if field else None


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


class OTLPReceiver:
    """Collects every export; ``.raw`` keeps the undecoded bodies for byte-level checks."""

    def __init__(self) -> None:
        self.raw: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/metrics": []}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                with receiver._lock:
                    receiver.raw.setdefault(self.path, []).append(body)
                reply = (
                    ExportTraceServiceResponse()
                    if self.path == "/v1/traces"
                    else ExportMetricsServiceResponse()
                ).SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def trace_requests(self) -> list[ExportTraceServiceRequest]:
        with self._lock:
            bodies = list(self.raw["/v1/traces"])
        return [ExportTraceServiceRequest.FromString(b) for b in bodies]

    def metric_requests(self) -> list[ExportMetricsServiceRequest]:
        with self._lock:
            bodies = list(self.raw["/v1/metrics"])
        return [ExportMetricsServiceRequest.FromString(b) for b in bodies]

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """``(resource attributes, span)`` for every span received."""
        out: list[tuple[dict[str, Any], Any]] = []
        for req in self.trace_requests():
            for rs in req.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((resource, span) for span in ss.spans)
        return out

    def metric_names(self) -> set[str]:
        return {
            m.name
            for req in self.metric_requests()
            for rm in req.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()
