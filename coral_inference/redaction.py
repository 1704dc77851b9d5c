"""Credentials out of logs and error texts: ``user:pass@`` in URLs and secret query parameters.

``redact_url`` cleans one source URL; ``redact_text`` every URL inside a message (an
exception text, a log line); ``install_log_redaction`` makes every log record of the
process go through ``redact_text`` — httpx's ``HTTP Request: GET http://user:pass@…``
lines included — whatever handler prints it. The web app and the CLI install it at
start, never at import.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"
SECRET_PARAMS = (
    "password",
    "passwd",
    "pass",
    "pwd",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "auth",
    "signature",
    "sig",
)
# scheme://userinfo@ — userinfo runs to the first @ before the host, without / ? # or spaces.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s'\"]+)@")
_PARAM = re.compile(
    r"(?P<head>[?&;](?:" + "|".join(SECRET_PARAMS) + r")=)(?P<value>[^&#\s'\"]+)", re.IGNORECASE
)

_TRACEBACKS = logging.Formatter()
_install_lock = threading.Lock()
_installed = False


def redact_text(text: str) -> str:
    """``text`` with URL credentials and secret query values masked.

    >>> redact_text("opening rtsp://admin:hunter2@10.0.0.9/s?token=abc&x=1 failed")
    'opening rtsp://***@10.0.0.9/s?token=***&x=1 failed'
    """
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _PARAM.sub(lambda m: f"{m['head']}{MASK}", text)


def redact_url(source: str | int) -> str | int:
    """A video source safe to show: credentials masked; camera indexes and plain paths unchanged.

    >>> redact_url("rtsp://user:pass@cam/1"), redact_url(0)
    ('rtsp://***@cam/1', 0)
    """
    return redact_text(source) if isinstance(source, str) else source


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message (its format string and its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = redact_text(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(arg) for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _redact_arg(value) for key, value in record.args.items()}
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        # Formatters reuse exc_text when set: the traceback is formatted (and cleaned) once, here.
        record.exc_text = redact_text(_TRACEBACKS.formatException(record.exc_info))


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = str(value)  # URLs, exceptions, paths: formatted the same way, then cleaned
    cleaned = redact_text(text)
    return value if cleaned == text else cleaned


def install_log_redaction() -> None:
    """Redact every log record created in this process from now on (idempotent).

    A record factory rather than a handler filter: records of every logger (httpx,
    uvicorn, inference) pass through it, whichever handler ends up printing them.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
