"""13.4, 13.12, 13.13, 13.14 in process: what depends only on the configuration (no bind needed).

A non-loopback bind is a configuration value here (``services.http.host=0.0.0.0``); the
app is driven through TestClient, so nothing listens beyond loopback during the test.
"""

from __future__ import annotations

import logging
import sqlite3

import pytest

from tests.webapp.support import HEADERS, web_config


@pytest.fixture
def lan_client(make_client, tmp_path):
    return make_client(web_config(tmp_path, http={"host": "0.0.0.0"}))


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/redoc"])
def test_on_a_lan_bind_the_api_docs_need_the_key(lan_client, path):
    assert lan_client.get(path).status_code == 401
    assert lan_client.get(path, headers=HEADERS).status_code == 200


def test_on_loopback_the_docs_stay_open(client):
    assert client.get("/openapi.json").status_code == 200


def test_on_a_lan_bind_readyz_shows_details_only_to_key_holders(lan_client):
    anonymous = lan_client.get("/readyz").json()
    assert anonymous["checks"] == {} and anonymous["failing"] == [] and anonymous["status"]
    assert set(lan_client.get("/readyz", headers=HEADERS).json()["checks"]) >= {"database"}


def test_auth_off_on_every_interface_starts_with_a_loud_warning(make_client, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    make_client(web_config(tmp_path, http={"host": "0.0.0.0"}, auth={"enabled": "off"}))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("ANYONE" in message and "0.0.0.0" in message for message in warnings), warnings


def test_a_generated_key_never_goes_through_logging(make_client, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(web_config(tmp_path, auth={"api_key_hashes": []}))
    key = client.app.state.generated_api_key
    assert key and key not in caplog.text
    assert client.delete("/api/v1/pipelines/x", headers={"X-API-Key": key}).status_code == 404


def test_a_full_database_is_a_500_with_a_request_id_and_nothing_else(config, caplog, monkeypatch):
    from fastapi.testclient import TestClient

    from coral_inference.webapp import create_web_app

    from ..fakes import FakeRunner

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full: /srv/coral/var/pipelines.sqlite3")

    caplog.set_level(logging.ERROR)
    with TestClient(
        create_web_app(config, runner_factory=FakeRunner), raise_server_exceptions=False
    ) as client:
        monkeypatch.setattr(client.app.state.services.pipelines, "list", full)
        response = client.get("/api/v1/pipelines", headers={"X-Request-ID": "probe-0001-abcd"})
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_error",
        "request_id": "probe-0001-abcd",
        "message": "internal error (request probe-0001-abcd; the server log has the rest)",
    }
    assert response.headers["x-request-id"] == "probe-0001-abcd"
    record = next(r for r in caplog.records if "probe-0001-abcd" in r.getMessage())
    assert "database or disk is full" in caplog.text and record.exc_info


def test_every_answer_has_a_request_id_and_a_bad_one_is_replaced(client):
    assert len(client.get("/healthz").headers["x-request-id"]) == 16
    assert (
        client.get("/healthz", headers={"X-Request-ID": "a b\nc"}).headers["x-request-id"]
        != "a b\nc"
    )


def test_an_unknown_host_name_is_refused_in_process_too(client):
    response = client.get("/api/v1/system/info", headers={"Host": "rebind.attacker.example"})
    assert response.status_code == 421 and "allowed_hosts" in response.json()["message"]


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("coral.lan:9100", True),
        ("cams.coral.lan", True),
        ("coral.lan.evil", False),
        ("10.1.2.3:80", True),
        ("[fe80::1]:9100", True),
        ("x.localhost", True),
        ("localhost.attacker.example", False),
        ("", False),
    ],
)
def test_host_policy(host, allowed):
    from coral_inference.webapp.middleware import HostPolicy

    assert HostPolicy(["coral.lan", "*.coral.lan"]).allows(host) is allowed


def test_cross_origin_mutations_are_refused_unless_listed(make_client, tmp_path):
    client = make_client(web_config(tmp_path, http={"cors_origins": ["https://ops.example.com"]}))
    body = {"workflow_file": "nope.json", "source": "x.mp4"}
    evil = client.post(
        "/api/v1/pipelines", json=body, headers={**HEADERS, "Origin": "http://testserver:8080"}
    )
    assert evil.status_code == 403
    listed = client.post(
        "/api/v1/pipelines", json=body, headers={**HEADERS, "Origin": "https://ops.example.com"}
    )
    own = client.post(
        "/api/v1/pipelines", json=body, headers={**HEADERS, "Origin": "http://testserver"}
    )
    assert listed.status_code != 403 and own.status_code != 403
    assert (
        client.get("/api/v1/pipelines", headers={"Origin": "http://evil:1"}).status_code == 200
    )  # reads: CORS


def test_sessions_expire_after_their_ttl(make_client, tmp_path, monkeypatch):
    from coral_inference.webapp import auth as auth_module

    client = make_client(web_config(tmp_path, auth={"session_ttl_s": 60}))
    token = client.post("/api/v1/auth/session", json={"api_key": HEADERS["X-API-Key"]}).cookies[
        "coral_session"
    ]
    policy = client.app.state.auth
    assert policy.session_valid(token)
    now = auth_module.time.monotonic()
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now + 61)
    assert not policy.session_valid(token)


def test_a_websocket_from_a_rebound_name_is_closed_as_a_policy_violation(client):
    from starlette.websockets import WebSocketDisconnect

    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/api/v1/anything", headers={"Host": "rebind.attacker.example"}),
    ):
        pass
    assert closed.value.code == 1008
