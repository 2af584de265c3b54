"""Tests of the billing API (CONTRACT §5)."""


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    """The response is the contract's error ``code`` (naming ``field`` in its details)."""
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert field in error["details"], error
    return error
