"""When a request that failed on a stale kept-alive connection may be sent again.

A server may close an idle connection just as the client sends the next request on
it; the request then fails before any response byte arrives (httpx #2983). RFC 9110
section 9.2.2 lets a client repeat an idempotent request in that case; anything else
is reported with an error that says what happened. No I/O here: the sync and async
transports share it.
"""

from __future__ import annotations

from enum import Enum

from ._probe import Exchange

__all__ = ["IDEMPOTENT_METHODS", "StaleDecision", "decide", "stale_message"]

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
        f"no response was received and the request was not retried: {why}. "
        "The server may or may not have processed it."
    )
