"""structlog processors for applications, and a one-call set-up for those that want it.

httpmgr never configures logging itself; these are for the application's own
``structlog.configure(...)``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from ._log import trace_context
from ._redact import Redactor

__all__ = ["RedactURLs", "add_trace_context", "configure_logging"]

EventDict = MutableMapping[str, Any]


def add_trace_context(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``trace_id`` and ``span_id`` of the current OpenTelemetry span, if any."""
    for key, value in trace_context().items():
        event_dict.setdefault(key, value)
    return event_dict


class RedactURLs:
    """Redact userinfo and sensitive query values in every string value that is a URL.

    Args:
        extra: More query parameter names to redact.
    """

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._redactor = Redactor(extra)

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            if isinstance(value, str) and "://" in value:
                event_dict[key] = " ".join(
                    self._redactor.url(word) if "://" in word else word for word in value.split(" ")
                )
        return event_dict


def configure_logging(*, json: bool = True, level: int = logging.INFO) -> None:
    """Configure structlog for the whole application: JSON (or console) lines on stdout,
    with timestamps, levels, trace context and redacted URLs."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_context,
            RedactURLs(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
