"""The web app in process (FakeRunner instead of inference): API shape, auth, limits, paths, restore."""

from __future__ import annotations

import json
import os

import pytest

from tests.pipelines.media import write_test_video

from .fakes import FakeRunner, workflow
from .support import API_KEY, HEADERS, web_config


def start(client, **body):
    body.setdefault("workflow_file", "blur.json")
    body.setdefault("source", "rtsp://cam.local/live")
    return client.post("/api/v1/pipelines", json=body, headers=HEADERS)


# ------------------------------------------------------------------ pipelines


def test_a_pipeline_goes_through_its_whole_life_over_the_api(client):
    response = start(client, name="gate", max_fps=5, parameters={"k": 1})
    assert response.status_code == 201, response.text
    created = response.json()
    pid = created["id"]
    assert (
        created["state"] == "running"
        and created["name"] == "gate"
        and created["source_kind"] == "stream"
    )
    assert created["preview_channel"] == pid
    assert FakeRunner.instances[-1].max_fps == 5 and FakeRunner.instances[-1].parameters == {"k": 1}
    assert [p["id"] for p in client.get("/api/v1/pipelines").json()] == [pid]
    assert (
        client.post(f"/api/v1/pipelines/{pid}/pause", headers=HEADERS).json()["state"] == "paused"
    )
    assert (
        client.post(f"/api/v1/pipelines/{pid}/resume", headers=HEADERS).json()["state"] == "running"
    )
    results = client.get(f"/api/v1/pipelines/{pid}/results").json()
    assert results["outputs"] == {"count": 2} and results["frame_id"] == 1
    snapshot = client.get(f"/api/v1/pipelines/{pid}/snapshot.jpg")
    assert snapshot.headers["content-type"] == "image/jpeg" and snapshot.content[:2] == b"\xff\xd8"
    channels = {c["name"]: c for c in client.get("/api/v1/streams").json()}
    assert channels[pid]["width"] == 64  # the preview was published under the pipeline id
    assert (
        client.post(f"/api/v1/pipelines/{pid}/terminate", headers=HEADERS).json()["state"]
        == "terminated"
    )
    assert client.delete(f"/api/v1/pipelines/{pid}", headers=HEADERS).status_code == 204
    assert client.get(f"/api/v1/pipelines/{pid}").json()["code"] == "pipeline_not_found"


def test_control_calls_the_state_forbids_are_conflicts(client):
    pid = start(client).json()["id"]
    response = client.post(f"/api/v1/pipelines/{pid}/resume", headers=HEADERS)
    assert response.status_code == 409 and response.json()["code"] == "invalid_pipeline_state"


def test_errors_are_json_with_code_and_message(client):
    missing = client.get("/api/v1/pipelines/nope")
    assert missing.status_code == 404 and set(missing.json()) == {"code", "message"}
    invalid = client.post("/api/v1/pipelines", json={"workflow_file": "blur.json"}, headers=HEADERS)
    assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_request"
    assert "source" in invalid.json()["message"]
    both = client.post(
        "/api/v1/pipelines",
        json={"workflow": workflow(), "workflow_file": "blur.json", "source": 0},
        headers=HEADERS,
    )
    assert both.status_code == 422 and "exactly one" in both.json()["message"]
    unknown_route = client.get("/api/v1/nothing-here")
    assert unknown_route.status_code == 404 and unknown_route.json()["code"] == "not_found"


def test_a_workflow_that_cannot_start_is_refused_with_the_reason(client):
    response = client.post(
        "/api/v1/pipelines",
        json={"workflow": workflow("fail"), "source": "rtsp://x/y"},
        headers=HEADERS,
    )
    assert response.status_code == 422
    assert (
        response.json()["code"] == "pipeline_start_failed"
        and "fail/at_start" in response.json()["message"]
    )
    assert client.get("/api/v1/pipelines").json() == []


def test_sources_are_classified_and_missing_files_refused(client, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00")
    assert start(client, source=str(video)).json()["source_kind"] == "file"
    assert start(client, source="2").json()["source_kind"] == "camera"
    assert FakeRunner.instances[-1].source == 2
    missing = start(client, source=str(tmp_path / "nope.mp4"))
    assert (
        missing.status_code == 422 and missing.json()["code"] == "source_not_allowed"
    )  # sources_policy
    odd = start(client, source="gopher://x/y")
    assert odd.status_code == 422 and odd.json()["code"] == "scheme_not_allowed"


def test_a_pipeline_placed_on_cores_the_box_lacks_is_refused_naming_them(client):
    missing = max(os.sched_getaffinity(0)) + 7
    response = client.post(
        "/api/v1/pipelines",
        json={"workflow": workflow(), "source": "rtsp://x/y", "cpu_affinity": [0, missing]},
        headers=HEADERS,
    )
    assert response.status_code == 422 and response.json()["code"] == "cpu_unavailable"
    assert f"core(s) {missing}" in response.json()["message"]
    assert client.get("/api/v1/pipelines").json() == []


def test_stream_credentials_never_appear_in_the_api(client):
    pid = start(client, source="rtsp://admin:hunter2@10.1.1.1/live").json()["id"]
    assert "hunter2" not in client.get(f"/api/v1/pipelines/{pid}").text
    assert "hunter2" not in client.get("/api/v1/pipelines").text


def test_max_pipelines_is_enforced(make_client, tmp_path):
    cfg = web_config(tmp_path, pipelines={"max_pipelines": 1})
    (tmp_path / "workflows" / "blur.json").write_text(json.dumps(workflow()))
    client = make_client(cfg)
    assert start(client).status_code == 201
    second = start(client)
    assert second.status_code == 409 and second.json()["code"] == "too_many_pipelines"


def test_workflow_files_are_listed_and_read_only_inside_the_root(client, tmp_path):
    (tmp_path / "workflows" / "notes.json").write_text('{"not": "a workflow"}')
    (tmp_path / "secret.json").write_text(json.dumps(workflow()))
    assert [w["path"] for w in client.get("/api/v1/workflows").json()] == ["blur.json"]
    for escape in (
        "../secret.json",
        "/etc/passwd",
        str(tmp_path / "secret.json"),
        "..\\secret.json",
    ):
        response = start(client, workflow_file=escape)
        assert response.status_code == 403, escape
        assert response.json()["code"] == "path_outside_root"
    (tmp_path / "workflows" / "link.json").symlink_to(tmp_path / "secret.json")
    assert start(client, workflow_file="link.json").status_code == 403
    assert "link.json" not in [w["path"] for w in client.get("/api/v1/workflows").json()]


def test_pipelines_left_running_come_back_with_their_ids_after_a_restart(make_client, config):
    first = make_client(config)
    running = start(first).json()["id"]
    paused = start(first).json()["id"]
    stopped = start(first).json()["id"]
    first.post(f"/api/v1/pipelines/{paused}/pause", headers=HEADERS)
    first.post(f"/api/v1/pipelines/{stopped}/terminate", headers=HEADERS)
    first.__exit__(None, None, None)
    second = make_client(config)
    restored = {p["id"]: p["state"] for p in _wait_restored(second)}
    assert restored[running] == "running"
    assert restored[paused] == "paused"
    assert restored[stopped] in ("terminated", "stopped")
    assert len([r for r in FakeRunner.instances if r.pipeline_id == running]) == 2


def _wait_restored(client):
    import time

    for _ in range(100):
        if client.get("/readyz").json()["checks"]["pipelines"]["ok"]:
            break
        time.sleep(0.05)
    return client.get("/api/v1/pipelines").json()


def test_a_finished_file_pipeline_is_not_restarted(make_client, config):
    first = make_client(config)
    pid = start(first).json()["id"]
    FakeRunner.instances[-1].finish()
    import asyncio

    asyncio.run(first.app.state.services.pipelines.sync_states())
    first.__exit__(None, None, None)
    second = make_client(config)
    assert {p["id"]: p["state"] for p in _wait_restored(second)}[pid] == "finished"


# ------------------------------------------------------------------ auth


def test_mutations_need_a_valid_key_reads_on_loopback_do_not(client):
    no_key = client.post("/api/v1/pipelines", json={"workflow_file": "blur.json", "source": "0"})
    assert no_key.status_code == 401 and no_key.json()["code"] == "missing_api_key"
    wrong = client.post(
        "/api/v1/pipelines",
        json={"workflow_file": "blur.json", "source": "0"},
        headers={"X-API-Key": "guess"},
    )
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_api_key"
    assert client.post("/api/v1/maintenance/cleanup").status_code == 401
    assert client.get("/api/v1/pipelines").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_beyond_loopback_every_route_needs_a_key_except_probes(make_client, tmp_path):
    client = make_client(web_config(tmp_path, http={"host": "0.0.0.0"}))
    assert client.get("/api/v1/pipelines").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/api/v1/pipelines", headers=HEADERS).status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code in (
        200,
        503,
    )


def test_a_session_cookie_stands_in_for_the_header(make_client, tmp_path):
    client = make_client(web_config(tmp_path, http={"host": "0.0.0.0"}))
    assert client.post("/api/v1/auth/session", json={"api_key": "nope"}).status_code == 401
    opened = client.post("/api/v1/auth/session", json={"api_key": API_KEY})
    assert opened.status_code == 200 and "httponly" in opened.headers["set-cookie"].lower()
    assert client.get("/api/v1/pipelines").status_code == 200
    client.delete("/api/v1/auth/session")
    assert client.get("/api/v1/pipelines").status_code == 401


def test_auth_off_opens_everything(make_client, tmp_path):
    client = make_client(web_config(tmp_path, auth={"enabled": "off"}, http={"host": "0.0.0.0"}))
    assert client.post("/api/v1/maintenance/cleanup").status_code == 200


def test_without_configured_keys_a_key_is_generated_for_the_run(make_client, tmp_path):
    client = make_client(web_config(tmp_path, auth={"api_key_hashes": []}))
    key = client.app.state.generated_api_key
    assert (
        key
        and client.post("/api/v1/maintenance/cleanup", headers={"X-API-Key": key}).status_code
        == 200
    )
    assert client.post("/api/v1/maintenance/cleanup").status_code == 401


def test_cors_allows_configured_origins_only_and_never_wildcard_with_credentials(
    make_client, tmp_path
):
    client = make_client(web_config(tmp_path, http={"cors_origins": ["http://ui.example"]}))
    ok = client.options(
        "/api/v1/pipelines",
        headers={"Origin": "http://ui.example", "Access-Control-Request-Method": "GET"},
    )
    assert ok.headers["access-control-allow-origin"] == "http://ui.example"
    other = client.get("/api/v1/pipelines", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    client.__exit__(None, None, None)
    wildcard = make_client(web_config(tmp_path / "w", http={"cors_origins": ["*"]}))
    response = wildcard.get("/api/v1/pipelines", headers={"Origin": "http://any.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


# ------------------------------------------------------------------ limits


def test_a_body_over_the_limit_is_refused_declared_or_streamed(client):
    big = {"workflow": {**workflow(), "padding": "x" * 70_000}, "source": "0"}
    declared = client.post("/api/v1/pipelines", json=big, headers=HEADERS)
    assert declared.status_code == 413 and declared.json()["code"] == "payload_too_large"

    def chunks():
        for _ in range(20):
            yield b"x" * 8192

    streamed = client.post(
        "/api/v1/pipelines",
        content=chunks(),
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert client.get("/api/v1/pipelines").json() == []


# ------------------------------------------------------------------ recordings


@pytest.fixture
def recording(config, tmp_path):
    path = tmp_path / "var/recordings/cam1/clip.mp4"
    write_test_video(path, frames=30)
    return path


def test_recordings_are_listed_with_size_duration_and_time(client, recording):
    (recording.parent / "notes.txt").write_text("not a video")
    rows = client.get("/api/v1/recordings").json()
    assert [r["path"] for r in rows] == ["cam1/clip.mp4"]
    row = rows[0]
    assert row["source"] == "cam1" and row["size_bytes"] == recording.stat().st_size
    assert row["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert row["modified_at"].endswith("+00:00")


def test_recordings_stream_with_http_ranges(client, recording):
    data = recording.read_bytes()
    full = client.get("/api/v1/recordings/cam1/clip.mp4")
    assert (
        full.status_code == 200
        and full.content == data
        and full.headers["accept-ranges"] == "bytes"
    )
    part = client.get("/api/v1/recordings/cam1/clip.mp4", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == data[10:100]
    assert part.headers["content-range"] == f"bytes 10-99/{len(data)}"
    beyond = client.get(
        "/api/v1/recordings/cam1/clip.mp4", headers={"Range": f"bytes={len(data) + 10}-"}
    )
    assert beyond.status_code == 416


def test_recording_paths_never_leave_the_recordings_root(client, recording, tmp_path):
    (tmp_path / "var/secret.mp4").write_bytes(b"TOP-SECRET-BYTES")
    (recording.parent / "escape.mp4").symlink_to(tmp_path / "var/secret.mp4")
    for path in (
        "..%2Fsecret.mp4",
        "cam1%2F..%2F..%2Fsecret.mp4",
        "%2Fetc%2Fpasswd",
        "cam1/escape.mp4",
        "..%5Csecret.mp4",
        "cam1/%2e%2e/%2e%2e/secret.mp4",
    ):
        response = client.get(f"/api/v1/recordings/{path}")
        assert response.status_code in (403, 404), path
        assert b"TOP-SECRET-BYTES" not in response.content
    assert "cam1/escape.mp4" not in [r["path"] for r in client.get("/api/v1/recordings").json()]


# ------------------------------------------------------------------ streams, monitoring, health


def test_a_broken_webrtc_offer_is_a_client_error(client):
    pid = start(client).json()["id"]
    response = client.post(
        f"/api/v1/pipelines/{pid}/webrtc", json={"sdp": "not sdp", "type": "offer"}, headers=HEADERS
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_offer"
    assert (
        client.post("/api/v1/pipelines/nope/webrtc", json={"sdp": "x"}, headers=HEADERS).status_code
        == 404
    )


def test_monitoring_history_collects_host_and_pipeline_samples(client):
    import time

    pid = start(client).json()["id"]
    for _ in range(100):
        history = client.get("/api/v1/metrics/history").json()
        if len(history["host"]) >= 2 and history["pipelines"].get(pid):
            break
        time.sleep(0.05)
    assert len(history["host"]) >= 2 and history["pipelines"][pid][-1]["state"] == "running"
    host = client.get("/api/v1/metrics/host").json()
    assert 0 <= host["cpu_percent"] <= 100 and host["disk_total_bytes"] > 0
    assert "prometheus" in client.get("/api/v1/metrics/sinks").json()["sinks"]


def test_metrics_exposes_host_and_web_gauges(client):
    import time

    start(client)
    for _ in range(100):
        text = client.get("/metrics").text
        if "coral_host_cpu_percent" in text:
            break
        time.sleep(0.05)
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert 'coral_web_pipelines{state="running"} 1.0' in text
    assert "coral_host_cpu_percent" in text


def test_readyz_names_the_failing_component(make_client, config):
    client = make_client(config)
    assert client.get("/readyz").json()["checks"]["database"]["ok"]
    task = client.app.state.services._tasks["monitor"]
    task.cancel()
    import time

    for _ in range(100):
        if task.done():
            break
        time.sleep(0.01)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["monitor"]


def test_system_info_describes_runtime_and_web(client):
    info = client.get("/api/v1/system/info").json()
    assert info["web"]["auth"]["mode"] == "auto" and info["web"]["ui"] == "default"
    assert "platform" in info and "backends" in info


def test_the_openapi_schema_documents_errors_and_examples(client):
    schema = client.get("/openapi.json").json()
    create = schema["paths"]["/api/v1/pipelines"]["post"]
    assert {"401", "422"} <= set(create["responses"])
    assert "ErrorBody" in schema["components"]["schemas"]
    assert schema["components"]["schemas"]["PipelineSpec"].get("examples")
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]


# ------------------------------------------------------------------ UI modes


def test_the_default_ui_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and '<video id="preview"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_ui_mode_none_serves_only_the_api(make_client, tmp_path):
    client = make_client(web_config(tmp_path, ui={"mode": "none"}))
    assert client.get("/").json()["docs"] == "/docs"
    assert client.get("/static/app.js").status_code == 404


def test_ui_mode_plugin_without_that_plugin_falls_back_to_no_ui(make_client, tmp_path):
    client = make_client(web_config(tmp_path, ui={"mode": "plugin", "plugin": "absent"}))
    assert "not installed" in client.get("/").json()["ui"]
