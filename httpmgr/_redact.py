"""Redaction: what may leave the process in a span, a metric or a log line.

``url.full`` keeps scheme, host, port, path and query *names*; userinfo becomes
``REDACTED:REDACTED`` and the values of sensitive query parameters ``REDACTED``
(the OpenTelemetry semantic-convention list plus ours, matched without regard to case
or percent-encoding). The fragment is dropped: it never goes on the wire and may hold
tokens. Headers are never recorded by httpmgr.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from ._settings import DEFAULT_SENSITIVE_QUERY_PARAMS

__all__ = ["REDACTED", "SEMCONV_SENSITIVE_QUERY_PARAMS", "SENSITIVE_HEADERS", "Redactor"]

REDACTED = "REDACTED"

# https://opentelemetry.io/docs/specs/semconv/registry/attributes/url/ (url.full)
SEMCONV_SENSITIVE_QUERY_PARAMS = frozenset(
    {
        "AWSAccessKeyId",
        "Signature",
        "sig",
        "X-Goog-Signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
    }
)

# Header names (regular expressions, matched whole and without regard to case) that
# instrumentations capturing headers must sanitize.
SENSITIVE_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-.*-api-key",
    "x-api-key",
    "x-.*-sign.*",
    "x-.*-token",
)


class Redactor:
    """Redacts URLs; ``extra`` adds query parameter names to the built-in list."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        names = SEMCONV_SENSITIVE_QUERY_PARAMS | DEFAULT_SENSITIVE_QUERY_PARAMS | set(extra)
        self.params = frozenset(name.lower() for name in names)

    def url(self, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            return REDACTED  # not a URL we can take apart: record nothing of it
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}:{REDACTED}@" + netloc.rpartition("@")[2]
        query = self.query(parts.query) if parts.query else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    def query(self, query: str) -> str:
        out = []
        for field in query.split("&"):
            name, eq, _ = field.partition("=")
            if eq and unquote_plus(name).strip().lower() in self.params:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(field)
        return "&".join(out)
