"""Where httpmgr's log events go, without configuring anything for the application.

Events are structlog events on the ``httpmgr`` logger when the application has
configured structlog; otherwise they go to the standard ``logging`` logger
``httpmgr``, which stays silent unless the application configures logging. (An
unconfigured structlog would print every event to stdout: no library should.)
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = ["LOGGER_NAME", "log_enabled", "log_event"]

LOGGER_NAME = "httpmgr"
_stdlib = logging.getLogger(LOGGER_NAME)
# The library convention: no output unless the application configures logging.
_stdlib.addHandler(logging.NullHandler())


def log_enabled(level: int) -> bool:
    """Whether an event at ``level`` would go anywhere (check before building one)."""
    return structlog.is_configured() or _stdlib.isEnabledFor(level)


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` (``httpmgr.<noun>_<verb>``) with key/value ``fields``.

    ``trace_id`` and ``span_id`` of the current span are added when there is one.
    """
    if not log_enabled(level):
        return
    fields.update(trace_context())
    if structlog.is_configured():
        structlog.get_logger(LOGGER_NAME).log(level, event, **fields)
    else:
        exc_info = fields.pop("exc_info", False)
        _stdlib.log(
            level, "%s %s", event, _kv(fields), exc_info=exc_info, extra={"httpmgr": fields}
        )


def trace_context() -> dict[str, str]:
    """``trace_id``/``span_id`` (hex, as OTLP and Jaeger show them) of the current span."""
    try:
        from opentelemetry import trace
    except ImportError:  # the otel extra is not installed
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def _kv(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v!r}" for k, v in fields.items())
