"""Settings: defaults, environment variables, and clear errors for bad values."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from httpmgr import HttpClientManager, Settings, SettingsError
from httpmgr.testing import HTTPSTestServer


def test_defaults() -> None:
    s = Settings()
    assert (s.max_keepalive_connections, s.max_connections, s.keepalive_expiry) == (20, 100, 30.0)
    assert s.timeout == 10.0
    assert s.verify is True


def test_client_is_built_with_the_settings(manager: HttpClientManager) -> None:
    client = manager.get_http_client(timeout=7, max_connections=9, max_keepalive_connections=3)
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections == 9
    assert pool._max_keepalive_connections == 3
    assert pool._keepalive_expiry == 30.0
    assert client.timeout.read == 7


def test_environment_variables_are_read_at_first_use() -> None:
    env = {
        "HTTPMGR_MAX_CONNECTIONS": "12",
        "HTTPMGR_MAX_KEEPALIVE_CONNECTIONS": "6",
        "HTTPMGR_KEEPALIVE_EXPIRY": "2.5",
        "HTTPMGR_TIMEOUT": "4",
        "HTTPMGR_HTTP2": "yes",
        "HTTPMGR_SENSITIVE_QUERY_PARAMS": "session, nonce",
    }
    settings = HttpClientManager(environ=env).settings()
    assert settings.max_connections == 12
    assert settings.max_keepalive_connections == 6
    assert settings.keepalive_expiry == 2.5
    assert settings.timeout == 4.0
    assert settings.http2 is True
    assert settings.sensitive_query_params == frozenset({"session", "nonce"})
    # keyword arguments win over the environment
    assert HttpClientManager(environ=env).settings(max_connections=30).max_connections == 30


@pytest.mark.parametrize(
    ("var", "value", "accepted"),
    [
        ("HTTPMGR_MAX_CONNECTIONS", "abc", "expected an integer"),
        ("HTTPMGR_MAX_CONNECTIONS", "0", "expected an integer >= 1"),
        ("HTTPMGR_MAX_KEEPALIVE_CONNECTIONS", "-1", "expected an integer >= 0"),
        ("HTTPMGR_MAX_KEEPALIVE_CONNECTIONS", "500", "<= max_connections (100)"),
        ("HTTPMGR_KEEPALIVE_EXPIRY", "soon", "a number of seconds"),
        ("HTTPMGR_KEEPALIVE_EXPIRY", "-3", "a number of seconds >= 0"),
        ("HTTPMGR_TIMEOUT", "0", "a number of seconds > 0, or None"),
        ("HTTPMGR_TIMEOUT", "nan", "a number of seconds > 0"),
        ("HTTPMGR_HTTP2", "maybe", "one of 1, 0, true, false"),
        ("HTTPMGR_RETRY_STALE", "2", "one of 1, 0, true, false"),
        ("HTTPMGR_CA_BUNDLE", "/nonexistent/ca.pem", "the path of an existing PEM file"),
        ("HTTPMGR_CONNECT_RETRIES", "-1", "an integer >= 0"),
    ],
)
def test_bad_environment_values_name_the_variable(var: str, value: str, accepted: str) -> None:
    manager = HttpClientManager(environ={var: value})  # nothing is read yet
    with pytest.raises(SettingsError) as excinfo:
        manager.get_http_client()
    message = str(excinfo.value)
    assert message.startswith(f"{var}={value!r} is not valid")
    assert accepted in message


def test_bad_env_value_fails_async_clients_too() -> None:
    manager = HttpClientManager(environ={"HTTPMGR_MAX_CONNECTIONS": "abc"})

    async def main() -> None:
        with pytest.raises(SettingsError, match="HTTPMGR_MAX_CONNECTIONS"):
            await manager.get_aiohttp_session()
        with pytest.raises(SettingsError, match="HTTPMGR_MAX_CONNECTIONS"):
            await manager.get_async_http_client()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_connections": -1}, "max_connections=-1 is not valid: expected an integer >= 1"),
        ({"max_connections": True}, "max_connections=True is not valid"),
        (
            {"max_connections": 5, "max_keepalive_connections": 10},
            "max_keepalive_connections=10 is not valid: expected an integer <= max_connections (5)",
        ),
        ({"timeout": -1}, "timeout=-1 is not valid"),
        ({"keepalive_expiry": "30"}, "keepalive_expiry='30' is not valid"),
        ({"verify": "no"}, "verify='no' is not valid: expected True, False or an ssl.SSLContext"),
        ({"max_conections": 5}, "unknown setting 'max_conections'; accepted settings: timeout"),
    ],
)
def test_bad_keyword_values_name_the_setting(kwargs: dict[str, Any], expected: str) -> None:
    manager = HttpClientManager(environ={})
    with pytest.raises(SettingsError) as excinfo:
        manager.get_http_client(**kwargs)
    assert expected in str(excinfo.value)


def test_no_variable_can_switch_verification_off(server: HTTPSTestServer) -> None:
    manager = HttpClientManager(environ={"HTTPMGR_VERIFY": "0", "HTTPMGR_VERIFY_SSL": "false"})
    assert manager.settings().verify is True
    import httpx

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        manager.get_http_client().get(server.url)
    manager.close_all()


def test_ca_bundle_setting(server: HTTPSTestServer) -> None:
    manager = HttpClientManager(environ={"HTTPMGR_CA_BUNDLE": server.ca_path})
    assert manager.get_http_client().get(server.url).text == "ok"
    manager.close_all()


def test_http2_option_negotiates_alpn(server: HTTPSTestServer) -> None:
    manager = HttpClientManager(Settings(verify=server.client_ssl_context()), environ={})
    client = manager.get_http_client(http2=True)
    response = client.get(server.url)
    # the test server speaks HTTP/1.1 only: the client offered h2 and fell back
    assert response.http_version == "HTTP/1.1"
    assert client._transport._pool._http2 is True  # type: ignore[attr-defined]
    assert manager.get_http_client(http2=False) is not client
    manager.close_all()
