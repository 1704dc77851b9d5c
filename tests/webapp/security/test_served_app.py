"""Issue 13 against a real ``coral-runtime web serve`` on loopback: what an attacker tried, refused.

One server for the module (starting one costs over a minute here). It runs with no
configured key — so it makes one and prints it — short sessions, a low failed-login
limit, one sources root and no cameras; a misbehaving HTTP server on 127.0.0.1 plays
the remote side of downloads.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.webapp.server import WebServer

from .hostile_http import VIDEO_BYTES, HostileHttpServer

pytestmark = [pytest.mark.server, pytest.mark.inference, pytest.mark.slow]

SESSION_TTL_S = 4
MAX_FAILED = 3


@pytest.fixture(scope="module")
def hostile():
    with HostileHttpServer(drip_interval_s=0.5) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from coral_inference import compat

    if compat.inference_info() is None:
        pytest.skip("Roboflow inference is not installed")
    root = tmp_path_factory.mktemp("served")
    media = root / "media"
    media.mkdir()
    web = WebServer(
        root,
        free_port(),
        "services.auth.api_key_hashes=[]",  # no key configured: the server makes one
        f"services.auth.session_ttl_s={SESSION_TTL_S}",
        f"services.auth.max_failed_logins={MAX_FAILED}",
        f"services.pipelines.sources_roots=[{media}]",
        "services.pipelines.devices=[]",
        "services.pipelines.download_timeout_s=3",
        "services.pipelines.download_retries=0",
        "services.streams.offer_timeout_s=10",
        "services.streams.peer_timeout_s=10",
    )
    web.write_workflow(
        "blur.json",
        {
            "version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [
                {"type": "roboflow_core/image_blur@v1", "name": "blur", "image": "$inputs.image"}
            ],
            "outputs": [{"type": "JsonField", "name": "preview", "selector": "$steps.blur.image"}],
        },
    )
    (root / "workflows" / "loop.json").symlink_to(root / "workflows" / "loop.json")
    try:
        # The pipeline workers' forkserver imports inference first: minutes on a busy box.
        web.start(timeout=400)
        yield web
    finally:
        web.stop()  # also when it never became ready: no server is left behind


@pytest.fixture(scope="module")
def key(server) -> str:
    found = re.findall(r"this run accepts the key (\S+)", server.log.read_text(errors="replace"))
    assert found, server.tail()
    return found[0]


@pytest.fixture(scope="module")
def http(server):
    with server.client(timeout=60) as client:
        yield client


def _no_internals(server: WebServer, response: httpx.Response) -> None:
    """An error body names no path of the box and no exception type; a 500 only its request id."""
    text = response.text
    assert str(server.root) not in text and "/tmp/" not in text, text
    assert not re.search(r"\b[A-Z][A-Za-z]+(Error|Exception|Redirects)\b", text), text
    assert response.headers.get("x-request-id"), response.headers
    if response.status_code == 500:
        body = response.json()
        assert body["code"] == "internal_error" and "internal error" in body["message"]
        assert body["request_id"] == response.headers["x-request-id"]
        assert body["request_id"] in server.log.read_text(errors="replace")  # the log has the rest


# ---------------------------------------------------------------- 13.4 DNS rebinding


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/recordings",
        "/api/v1/system/info",
        "/api/v1/cameras/0/snapshot.jpg",
        "/api/v1/pipelines",
        "/",
        "/metrics",
    ],
)
def test_a_rebound_host_name_reads_nothing(server, http, path):
    response = http.get(path, headers={"Host": f"attacker.example:{server.port}"})
    assert response.status_code == 421, (path, response.status_code, response.text[:200])
    assert response.json()["code"] == "host_not_allowed"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_loopback_names_and_addresses_are_served(server, http, host):
    assert (
        http.get("/api/v1/recordings", headers={"Host": f"{host}:{server.port}"}).status_code == 200
    )


def test_the_trailing_slash_redirect_carries_only_a_path(server, http):
    response = http.get(
        "/api/v1/pipelines/?x=1",
        headers={"Host": f"localhost:{server.port}"},
        follow_redirects=False,
    )
    assert response.status_code == 307
    assert response.headers["location"] == "/api/v1/pipelines?x=1"


# ---------------------------------------------------------------- 13.12 no internals in a 500


def test_a_499_character_workflow_name_says_nothing_of_the_box(server, http, key):
    name = "a" * 494 + ".json"
    response = http.post(
        "/api/v1/pipelines",
        headers={"X-API-Key": key},
        json={"workflow_file": name, "source": "clip.mp4"},
    )
    assert response.status_code in (404, 422, 500), response.text
    _no_internals(server, response)


def test_a_symlink_loop_workflow_says_nothing_of_the_box(server, http, key):
    response = http.post(
        "/api/v1/pipelines",
        headers={"X-API-Key": key},
        json={"workflow_file": "loop.json", "source": "clip.mp4"},
    )
    assert response.status_code in (404, 422, 500), response.text
    _no_internals(server, response)


@pytest.mark.parametrize("source", ["{base}/loop", "http://[::1"])
def test_a_redirect_loop_or_a_broken_url_is_the_clients_fault(server, http, key, hostile, source):
    response = http.post(
        "/api/v1/pipelines",
        headers={"X-API-Key": key},
        json={"workflow_file": "blur.json", "source": source.format(base=hostile.base)},
    )
    assert response.status_code == 422, response.text
    _no_internals(server, response)


def test_an_offer_with_too_many_sections_is_refused_and_frees_its_viewer_slot_at_once(
    server, http, key
):
    from aiortc import RTCPeerConnection

    async def offer(sections: int) -> str:
        pc = RTCPeerConnection()
        for _ in range(sections):
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    sdp = asyncio.run(offer(50))
    assert len(sdp) < 100_000  # the request itself is within the API's limits
    response = http.post(
        "/api/v1/streams/any/webrtc", headers={"X-API-Key": key}, json={"type": "offer", "sdp": sdp}
    )
    assert response.status_code == 422, response.text[:300]
    _no_internals(server, response)
    metrics = http.get("/metrics", headers={"X-API-Key": key}).text
    assert re.search(r"^coral_web_stream_viewers 0\.0$", metrics, re.M), metrics[-2000:]


# ---------------------------------------------------------------- 13.13 secrets in logs


def test_the_generated_key_is_printed_once_and_never_logged(server, key):
    output = server.log.read_text(errors="replace")
    assert output.count(key) == 1, output[-3000:]
    line = next(line for line in output.splitlines() if key in line)
    assert "WARNING" not in line and "coral_inference" not in line, line


def test_credentials_in_a_source_url_reach_neither_the_answer_nor_the_log(
    server, http, key, hostile
):
    source = f"http://operator:S3cretPw@127.0.0.1:{hostile.port}/404.mp4"
    response = http.post(
        "/api/v1/pipelines",
        headers={"X-API-Key": key},
        json={"workflow_file": "blur.json", "source": source},
    )
    assert response.status_code == 422, response.text
    assert "S3cretPw" not in response.text and "***@127.0.0.1" in response.text
    time.sleep(0.5)
    assert "S3cretPw" not in server.log.read_text(errors="replace")


# ---------------------------------------------------------------- 13.14 auth hardening


def _session(http: httpx.Client, key: str) -> httpx.Response:
    return http.post("/api/v1/auth/session", json={"api_key": key})


def test_the_session_cookie_is_strict_and_expires(server, http, key):
    opened = _session(http, key)
    assert opened.status_code == 200
    cookie = opened.headers["set-cookie"].lower()
    assert (
        "samesite=strict" in cookie
        and "httponly" in cookie
        and f"max-age={SESSION_TTL_S}" in cookie
    )
    token = opened.cookies["coral_session"]
    mutate = {"Cookie": f"coral_session={token}"}
    assert http.delete("/api/v1/pipelines/nope", headers=mutate).status_code == 404  # signed in
    time.sleep(SESSION_TTL_S + 0.5)
    expired = http.delete("/api/v1/pipelines/nope", headers=mutate)
    assert expired.status_code == 401 and expired.json()["code"] == "session_expired"


def test_a_page_on_another_port_cannot_ride_the_session_cookie(server, http, key):
    token = _session(http, key).cookies["coral_session"]
    cookie = {"Cookie": f"coral_session={token}"}
    evil = http.post(
        "/api/v1/pipelines",
        json={"workflow_file": "blur.json", "source": "x.mp4"},
        headers={**cookie, "Origin": f"http://127.0.0.1:{server.port + 1}"},
    )
    assert evil.status_code == 403 and evil.json()["code"] == "cross_origin_refused", evil.text
    own = http.post(
        "/api/v1/pipelines",
        json={"workflow_file": "blur.json", "source": "x.mp4"},
        headers={**cookie, "Origin": f"http://127.0.0.1:{server.port}"},
    )
    assert own.status_code == 422, own.text  # past auth and origin: the source is what is wrong


def test_wrong_keys_are_rate_limited_per_client(server, key):
    # From 127.0.0.2 so that the throttle does not touch the other tests' client (127.0.0.1).
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=server.base, transport=transport, timeout=30) as other:
        for _ in range(MAX_FAILED):
            assert other.post("/api/v1/auth/session", json={"api_key": "guess"}).status_code == 401
        throttled = other.post("/api/v1/auth/session", json={"api_key": key})
        assert throttled.status_code == 429, throttled.text
        assert int(throttled.headers["retry-after"]) > 0
        assert other.delete("/api/v1/pipelines/x", headers={"X-API-Key": key}).status_code == 429
    with httpx.Client(base_url=server.base, timeout=30) as mine:
        assert mine.delete("/api/v1/pipelines/x", headers={"X-API-Key": key}).status_code == 404


@pytest.mark.parametrize("index", [0, 64, 99999])
def test_a_camera_snapshot_needs_a_listed_device_and_a_sane_index(server, http, key, index):
    response = http.get(f"/api/v1/cameras/{index}/snapshot.jpg", headers={"X-API-Key": key})
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("camera_not_allowed", "invalid_camera")


# ---------------------------------------------------------------- 13.9 not a pivot, 13.8 downloads


def _create(http: httpx.Client, key: str, source: str | int) -> httpx.Response:
    return http.post(
        "/api/v1/pipelines",
        headers={"X-API-Key": key},
        json={"workflow_file": "blur.json", "source": source},
    )


def test_sources_outside_the_roots_read_like_missing_ones(server, http, key):
    outside = server.root / "outside.mp4"
    outside.write_bytes(VIDEO_BYTES)
    (server.root / "media" / "escape.mp4").symlink_to(outside)
    answers = {}
    for source in (
        str(outside),
        "/etc/hostname",
        str(server.root / "nope.mp4"),
        "escape.mp4",
        "../outside.mp4",
    ):
        response = _create(http, key, source)
        assert response.status_code == 422, (source, response.text)
        assert response.json()["code"] == "source_not_allowed"
        answers[source] = response.json()["message"].replace(repr(source), "SOURCE")
    assert len(set(answers.values())) == 1, answers


def test_sources_that_would_listen_or_use_other_schemes_are_refused(server, http, key):
    import socket

    port = free_port()
    for source in (
        f"tcp://127.0.0.1:{port}?listen=1",
        f"udp://@:{port}",
        "file:///etc/hostname",
        "concat:/etc/hostname",
    ):
        response = _create(http, key, source)
        assert response.status_code == 422, (source, response.text)
    with socket.socket() as probe, pytest.raises(OSError):
        probe.settimeout(1)
        probe.connect(("127.0.0.1", port))  # nothing listens there


@pytest.mark.parametrize("source", [0, "1", "99999", "/dev/video0"])
def test_sources_cameras_must_be_listed(server, http, key, source):
    response = _create(http, key, source)
    assert response.status_code == 422, response.text


def test_sources_http_redirects_to_internal_addresses_are_not_followed(server, http, key, hostile):
    response = _create(http, key, f"{hostile.base}/to-internal")
    assert response.status_code == 422 and "cannot be opened" in response.json()["message"]
    assert "/internal" not in hostile.hits


def test_sources_closed_404_and_hanging_read_the_same(server, http, key, hostile):
    urls = [
        f"http://127.0.0.1:{free_port()}/v.mp4",
        f"{hostile.base}/404.mp4",
        f"{hostile.base}/hang.mp4",
        f"{hostile.base}/playlist.mp4",
    ]
    messages = set()
    for url in urls:
        started = time.monotonic()
        response = _create(http, key, url)
        assert response.status_code == 422, response.text
        assert time.monotonic() - started < 15  # download_timeout_s=3 is the whole deadline
        messages.add(response.json()["message"].replace(url, "URL"))
    assert len(messages) == 1, messages


def test_sources_a_file_in_the_roots_runs_and_a_download_goes_with_its_pipeline(
    server, http, key, hostile
):
    from coral_inference.demo.scenes import write_demo_video

    write_demo_video(server.root / "media" / "clip.mp4", seconds=2, fps=5)
    local = _create(http, key, "clip.mp4")
    assert local.status_code == 201, local.text
    downloaded = _create(http, key, f"{hostile.base}/video.mp4")
    assert downloaded.status_code == 201, downloaded.text
    videos = server.root / "var" / "videos"
    assert len(list(videos.iterdir())) == 1
    for created in (local, downloaded):
        assert http.delete(
            f"/api/v1/pipelines/{created.json()['id']}", headers={"X-API-Key": key}
        ).status_code in (200, 204)
    server.wait_for(lambda: not list(videos.iterdir()), timeout=30, what="the download deleted")
