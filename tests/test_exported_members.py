import httpmgr


def test_exported_members() -> None:
    assert httpmgr.__all__ == sorted(httpmgr.__all__)
    assert set(httpmgr.__all__) == {
        name for name in dir(httpmgr) if not name.startswith("_") and name not in {"testing"}
    }
