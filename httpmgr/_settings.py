"""Settings: one frozen object every client is built from.

Values come from three layers, later ones winning: the defaults below, ``HTTPMGR_*``
environment variables, and keyword arguments given in code. Every value is checked
before a client is built, and an error names the setting (or the variable) and the
values it accepts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "resolve_settings"]

ENV_PREFIX = "HTTPMGR_"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

# Query parameters whose values never reach a span, metric or log line (besides the
# OpenTelemetry semantic-convention list, applied by the redaction module).
DEFAULT_SENSITIVE_QUERY_PARAMS = frozenset(
    {"api_key", "apikey", "sign", "signature", "token", "access_token", "secret", "password"}
)


class SettingsError(ValueError):
    """A setting or an ``HTTPMGR_*`` variable has a value httpmgr cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """How every managed client is built.

    Args:
        timeout: Seconds for each of connect, read, write and pool wait; ``None`` for no
            timeout.
        connect_timeout: Seconds to connect (TCP and TLS); defaults to ``timeout``.
        pool_timeout: Seconds to wait for a free connection; defaults to ``timeout``.
        max_connections: Connections open at once, per pool.
        max_keepalive_connections: Idle connections kept for reuse (httpx only; aiohttp
            keeps every idle connection until ``keepalive_expiry``).
        keepalive_expiry: Seconds an idle connection is kept before it is closed.
        http2: Negotiate HTTP/2 (httpx only; needs the ``h2`` package).
        verify: Verify server certificates (``True``) or use this SSL context.
            Verification cannot be switched off by an environment variable.
        ca_bundle: Path of a PEM file of trusted CAs, instead of the system's.
        retry_stale: Retry an idempotent request once when a kept-alive connection
            turns out to have been closed by the server before any response byte.
        connect_retries: Extra attempts to establish a connection (httpx only).
        follow_redirects: Follow redirects.
        trust_env: Honour ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when ``ca_bundle`` is unset.
        sensitive_query_params: Extra query parameter names whose values are redacted
            from telemetry, on top of the built-in list.
    """

    timeout: float | None = 10.0
    connect_timeout: float | None = None
    pool_timeout: float | None = None
    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry: float = 30.0
    http2: bool = False
    verify: bool | ssl.SSLContext = True
    ca_bundle: str | None = None
    retry_stale: bool = True
    connect_retries: int = 0
    follow_redirects: bool = False
    trust_env: bool = True
    sensitive_query_params: frozenset[str] = field(default=frozenset())

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        _check(values, lambda name: f"{name}={values[name]!r}")

    @property
    def pool_key(self) -> tuple[Any, ...]:
        """The settings that shape a connection pool; clients that agree share one."""
        return (
            self.max_connections,
            self.max_keepalive_connections,
            self.keepalive_expiry,
            self.http2,
            self.verify,
            self.ca_bundle,
            self.connect_retries,
            self.trust_env,
        )

    @property
    def effective_connect_timeout(self) -> float | None:
        return self.timeout if self.connect_timeout is None else self.connect_timeout

    @property
    def effective_pool_timeout(self) -> float | None:
        return self.timeout if self.pool_timeout is None else self.pool_timeout

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; unknown names raise :class:`SettingsError`."""
        return resolve_settings(self, {}, changes)

    def ssl_context(self) -> ssl.SSLContext:
        """Build the client SSL context these settings describe (verification on)."""
        if isinstance(self.verify, ssl.SSLContext):
            return self.verify
        if self.ca_bundle is not None:
            return ssl.create_default_context(cafile=self.ca_bundle)
        if self.trust_env and os.environ.get("SSL_CERT_FILE"):
            return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        if self.trust_env and os.environ.get("SSL_CERT_DIR"):
            return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        import certifi

        return ssl.create_default_context(cafile=certifi.where())


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# Settings that may come from the environment. ``verify`` is deliberately absent:
# no variable can switch certificate verification off.
_ENV_FIELDS = tuple(n for n in _FIELDS if n != "verify")


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _parse_env(name: str, raw: str) -> Any:
    var = env_var(name)
    text = raw.strip()
    if name in {"max_connections", "max_keepalive_connections", "connect_retries"}:
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{var}={raw!r} is not valid: expected an integer") from None
    if name in {"timeout", "connect_timeout", "pool_timeout", "keepalive_expiry"}:
        if text.lower() == "none" and name != "keepalive_expiry":
            return None
        try:
            return float(text)
        except ValueError:
            accepted = "a number of seconds" + ("" if name == "keepalive_expiry" else " or 'none'")
            raise SettingsError(f"{var}={raw!r} is not valid: expected {accepted}") from None
    if name in {"http2", "retry_stale", "follow_redirects", "trust_env"}:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise SettingsError(
            f"{var}={raw!r} is not valid: expected one of 1, 0, true, false, yes, no, on, off"
        )
    if name == "sensitive_query_params":
        return frozenset(p.strip() for p in text.split(",") if p.strip())
    return text or None  # ca_bundle


def _check(values: Mapping[str, Any], shown: Callable[[str], str]) -> None:
    """Raise SettingsError for the first value that is out of range.

    ``shown(name)`` renders where the value came from, as ``name=value`` or
    ``HTTPMGR_NAME='raw'``.
    """

    def fail(name: str, accepted: str) -> None:
        raise SettingsError(f"{shown(name)} is not valid: expected {accepted}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_seconds(v: Any) -> bool:
        return is_int(v) or (isinstance(v, float) and math.isfinite(v))

    for name in ("timeout", "connect_timeout", "pool_timeout"):
        v = values[name]
        if v is not None and not (is_seconds(v) and v > 0):
            fail(name, "a number of seconds > 0, or None for no timeout")
    if not (is_int(values["max_connections"]) and values["max_connections"] >= 1):
        fail("max_connections", "an integer >= 1")
    keepalive = values["max_keepalive_connections"]
    if not (is_int(keepalive) and keepalive >= 0):
        fail("max_keepalive_connections", "an integer >= 0")
    if keepalive > values["max_connections"]:
        fail(
            "max_keepalive_connections",
            f"an integer <= max_connections ({values['max_connections']})",
        )
    if not (is_seconds(values["keepalive_expiry"]) and values["keepalive_expiry"] >= 0):
        fail("keepalive_expiry", "a number of seconds >= 0")
    if not (is_int(values["connect_retries"]) and values["connect_retries"] >= 0):
        fail("connect_retries", "an integer >= 0")
    for name in ("http2", "retry_stale", "follow_redirects", "trust_env"):
        if not isinstance(values[name], bool):
            fail(name, "True or False")
    if not isinstance(values["verify"], (bool, ssl.SSLContext)):
        fail("verify", "True, False or an ssl.SSLContext")
    bundle = values["ca_bundle"]
    if bundle is not None and not (isinstance(bundle, str) and os.path.isfile(bundle)):
        fail("ca_bundle", "the path of an existing PEM file, or None")
    params = values["sensitive_query_params"]
    if not (isinstance(params, frozenset) and all(isinstance(p, str) for p in params)):
        fail("sensitive_query_params", "a frozenset of parameter names")


def resolve_settings(
    base: Settings,
    environ: Mapping[str, str],
    overrides: Mapping[str, Any],
) -> Settings:
    """Layer ``HTTPMGR_*`` variables from ``environ`` then ``overrides`` onto ``base``.

    Errors name the variable or the keyword the bad value came from.
    """
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise SettingsError(
            f"unknown setting {unknown[0]!r}; accepted settings: {', '.join(_FIELDS)}"
        )
    values = {name: getattr(base, name) for name in _FIELDS}
    from_env: dict[str, str] = {}
    for name in _ENV_FIELDS:
        raw = environ.get(env_var(name))
        if raw is not None:
            values[name] = _parse_env(name, raw)
            from_env[name] = f"{env_var(name)}={raw!r}"
    for name, value in overrides.items():
        if name == "sensitive_query_params" and not isinstance(value, frozenset):
            value = frozenset(value)
        values[name] = value
        from_env.pop(name, None)
    _check(values, lambda name: from_env.get(name) or f"{name}={values[name]!r}")
    return Settings(**values)
