"""When a request that failed on a stale kept-alive connection may be sent again.

A server may close an idle connection just as the client sends the next request on
it; the request then fails before any response byte arrives (httpx #2983). RFC 9110
section 9.2.2 lets a client repeat an idempotent request in that case; anything else
is reported with an error that says what happened. No I/O here: the sync and async
transports share it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from ._probe import Exchange

__all__ = [
    "IDEMPOTENT_METHODS",
    "StaleDecision",
    "decide",
    "disconnect_message",
    "stale_message",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_REASON = "stale_connection"


class StaleDecision(Enum):
    RAISE = "raise"  # not a stale connection: let the error through unchanged
    RETRY = "retry"  # stale, idempotent, body replayable, first attempt: send again
    EXPLAIN = "explain"  # stale, but not safe to repeat: raise with a clear message


def decide(exchange: Exchange, *, replayable: bool, attempt: int, enabled: bool) -> StaleDecision:
    """Classify a failed attempt (the caller has checked the exception's type)."""
    if not (exchange.reused and not exchange.received):
        return StaleDecision.RAISE
    if enabled and attempt == 0 and replayable and exchange.method in IDEMPOTENT_METHODS:
        return StaleDecision.RETRY
    return StaleDecision.EXPLAIN


def stale_message(exchange: Exchange, exc: BaseException) -> str:
    ep = exchange.endpoint
    if exchange.method in IDEMPOTENT_METHODS:
        why = "it was already retried once, or its body could not be sent again"
    else:
        why = f"{exchange.method} is not idempotent, so httpmgr does not repeat it"
    return (
        f"{exchange.method} to {ep.scheme}://{ep.host}:{ep.port} was sent on a kept-alive "
        f"connection that the server had closed ({exc or type(exc).__name__}); "
        f"no response was received and it was not retried: {why}. "
        "The server may or may not have processed it."
    )


def disconnect_message(method: str, url: Any, exc: BaseException) -> str:
    """For aiohttp, which re-sends idempotent requests itself: a non-idempotent one whose
    connection the server closed before any response (aiohttp says "Server disconnected")."""
    return (
        f"{method} to {url.scheme}://{url.host}:{url.port} was sent on a connection that the "
        f"server closed before responding ({exc or type(exc).__name__}); it was not retried: "
        f"{method} is not idempotent, so httpmgr does not repeat it. "
        "The server may or may not have processed it."
    )
