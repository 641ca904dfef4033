import httpmgr
import httpmgr.telemetry
import httpmgr.testing

SUBMODULES = {"telemetry", "testing"}


def test_exported_members() -> None:
    assert httpmgr.__all__ == sorted(httpmgr.__all__)
    public = {name for name in dir(httpmgr) if not name.startswith("_")}
    assert set(httpmgr.__all__) == public - SUBMODULES


def test_submodule_exports() -> None:
    assert httpmgr.telemetry.__all__ == [
        "HttpmgrInstrumentor",
        "configure_from_env",
        "instrument",
        "uninstrument",
    ]
    assert httpmgr.testing.__all__ == [
        "Faults",
        "HTTPSTestServer",
        "ServerProcess",
        "ServerStats",
        "unused_port",
    ]
