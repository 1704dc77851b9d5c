"""AuthPolicy: who needs a key for what, digests only, sessions."""

from __future__ import annotations

import pytest

from coral_inference.config.schema import AuthConfig
from coral_inference.webapp.auth import AuthPolicy, hash_key, is_loopback
from coral_inference.webapp.errors import UnauthorizedError


def policy(mode="auto", host="127.0.0.1", keys=("k1",)) -> AuthPolicy:
    return AuthPolicy.from_config(
        AuthConfig(enabled=mode, api_key_hashes=[hash_key(k) for k in keys]), host
    )


@pytest.mark.parametrize(
    "host, expected",
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.20", False),
        ("::", False),
        ("box.lan", False),
    ],
)
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


@pytest.mark.parametrize(
    "mode, host, method, needs",
    [
        ("auto", "127.0.0.1", "GET", False),
        ("auto", "127.0.0.1", "POST", True),
        ("auto", "127.0.0.1", "DELETE", True),
        ("auto", "0.0.0.0", "GET", True),
        ("on", "127.0.0.1", "GET", True),
        ("off", "0.0.0.0", "POST", False),
        ("auto", "0.0.0.0", "OPTIONS", False),
    ],
)
def test_which_requests_need_a_key(mode, host, method, needs):
    assert policy(mode, host).requires_key(method, "/api/v1/pipelines") is needs


def test_probes_stay_open_even_when_everything_else_is_locked():
    p = policy("on", "0.0.0.0")
    assert not p.requires_key("GET", "/healthz") and not p.requires_key("GET", "/readyz")
    assert p.requires_key("GET", "/metrics")


def test_only_digests_are_kept_and_any_configured_key_matches():
    p = policy(keys=("first", "second"))
    assert "first" not in repr(p) and p.key_hashes == [hash_key("first"), hash_key("second")]
    assert p.key_matches("second") and not p.key_matches("third")
    p.check("POST", "/api/v1/pipelines", "first", None)
    with pytest.raises(UnauthorizedError, match="not accepted"):
        p.check("POST", "/api/v1/pipelines", "wrong", None)
    with pytest.raises(UnauthorizedError, match="X-API-Key"):
        p.check("POST", "/api/v1/pipelines", None, None)


def test_sessions_are_opened_by_a_valid_key_only_and_can_be_closed():
    p = policy()
    with pytest.raises(UnauthorizedError):
        p.open_session("nope")
    token = p.open_session("k1")
    p.check("POST", "/api/v1/x", None, token)
    p.close_session(token)
    with pytest.raises(UnauthorizedError):
        p.check("POST", "/api/v1/x", None, token)


def test_no_configured_key_generates_one_for_the_run_unless_auth_is_off():
    generated = policy(keys=())
    assert generated.generated_key and generated.key_matches(generated.generated_key)
    assert policy("off", keys=()).generated_key is None


def test_config_refuses_keys_in_clear():
    with pytest.raises(ValueError, match="hash-key"):
        AuthConfig(api_key_hashes=["my-plain-key"])
