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

__all__ = ["LOGGER_NAME", "log_event"]

LOGGER_NAME = "httpmgr"
_stdlib = logging.getLogger(LOGGER_NAME)


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` (``httpmgr.<noun>_<verb>``) with key/value ``fields``."""
    if structlog.is_configured():
        structlog.get_logger(LOGGER_NAME).log(level, event, **fields)
    elif _stdlib.isEnabledFor(level):
        _stdlib.log(level, "%s %s", event, _kv(fields), extra={"httpmgr": fields})


def _kv(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v!r}" for k, v in fields.items())
