"""The dashboard in Debian's Chromium (Playwright): start a pipeline, watch it live, play a recording, see charts."""

from __future__ import annotations

import pytest

from tests.conftest import free_port

from .server import API_KEY, WebServer, detect_and_record_workflow

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.inference, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture
def browser(require_tool):
    chromium = require_tool("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path, require_inference):
    from coral_inference.demo.scenes import write_demo_video

    web = WebServer(tmp_path / "web", free_port())
    web.write_workflow("detect_and_record.json", detect_and_record_workflow())
    web.video = tmp_path / "demo.mp4"
    write_demo_video(web.video, seconds=20, fps=15)
    web.start()
    yield web
    web.stop()


def test_start_watch_record_and_chart_a_pipeline_from_the_dashboard(browser, server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.base + "/")
    page.fill("#api-key", API_KEY)
    page.click("#key-form button")
    page.wait_for_selector("#message:has-text('key accepted')")
    page.wait_for_selector("#workflow option[value='detect_and_record.json']", state="attached")
    page.select_option("#workflow", "detect_and_record.json")
    page.fill("#source", str(server.video))
    page.fill("#max-fps", "6")
    page.click("#start")
    page.wait_for_selector("#pipelines tbody tr[data-state='running']", timeout=120_000)

    # live preview: frames arrive in the <video> and its clock advances
    page.wait_for_function("document.querySelector('#preview').videoWidth > 0", timeout=60_000)
    first = page.evaluate("document.querySelector('#preview').currentTime")
    page.wait_for_function(
        f"document.querySelector('#preview').currentTime > {first} + 1", timeout=30_000
    )
    assert page.evaluate("document.querySelector('#preview').videoWidth") == 640

    # charts get data from the monitor's history
    page.wait_for_function(
        "Number(document.querySelector('#chart-fps').dataset.points) >= 2", timeout=60_000
    )
    page.wait_for_function(
        "Number(document.querySelector('#chart-cpu').dataset.points) >= 2", timeout=30_000
    )

    # a recording is listed and plays in the player
    # Newest first: the top segment may still be written (a fragmented MP4 has no
    # duration until it is finished), so play the second, finished one.
    page.wait_for_function(
        "document.querySelectorAll('#recordings a.recording').length >= 2", timeout=90_000
    )
    link = page.query_selector_all("#recordings a.recording")[1]
    link.click()
    page.wait_for_function("document.querySelector('#player').readyState >= 2", timeout=30_000)
    assert page.evaluate("document.querySelector('#player').duration") > 0
    assert page.evaluate("document.querySelector('#player').videoWidth") == 640

    assert page.inner_text("#health") == "ready"
    row = page.query_selector("#pipelines tbody tr[data-state='running']")
    row.query_selector("button:has-text('Stop')").click()
    page.wait_for_selector("#pipelines tbody tr[data-state='terminated']", timeout=60_000)
    assert errors == []
