"""Secrets out of logs (13.13): URL credentials masked in every log record, httpx's included."""

from __future__ import annotations

import logging

import pytest

from coral_inference.redaction import install_log_redaction, redact_text, redact_url


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rtsp://admin:hunter2@10.0.0.9:554/s", "rtsp://***@10.0.0.9:554/s"),
        ("GET http://u:p@h/x?token=abc&y=1 failed", "GET http://***@h/x?token=***&y=1 failed"),
        ("rtsp://10.0.0.9/s", "rtsp://10.0.0.9/s"),
        ("user@example.org wrote", "user@example.org wrote"),
        ("'http://a:b@h/1' and 'rtmp://c:d@e/2'", "'http://***@h/1' and 'rtmp://***@e/2'"),
    ],
)
def test_redact_text(text, expected):
    assert redact_text(text) == expected


def test_redact_url_leaves_cameras_and_paths():
    assert redact_url(3) == 3 and redact_url("/srv/v.mp4") == "/srv/v.mp4"


def test_every_log_record_is_cleaned_httpx_and_tracebacks_included(caplog):
    install_log_redaction()
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").info(
        'HTTP Request: %s %s "%s"', "GET", "http://op:S3cret@127.0.0.1/v.mp4", "200 OK"
    )
    try:
        raise ValueError("cannot open rtsp://op:S3cret@cam/1")
    except ValueError:
        logging.getLogger("coral_inference.test").exception("opening %s", "rtsp://op:S3cret@cam/1")
    text = caplog.text
    assert "S3cret" not in text, text
    assert "http://***@127.0.0.1/v.mp4" in text and "rtsp://***@cam/1" in text
