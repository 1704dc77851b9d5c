"""API-key authentication of the web control plane.

Keys are stored as sha256 hex digests (``services.auth.api_key_hashes``); a
client sends the key in a header (``X-API-Key`` by default) or, for what a
browser fetches by itself (``<video src>``), in a session cookie obtained by
``POST /api/v1/auth/session``.

When is a key needed? ``enabled: off`` never, ``on`` always, ``auto`` for
mutating requests (anything but GET/HEAD/OPTIONS), and for every request when
the server listens beyond loopback. ``/healthz`` and ``/readyz`` stay open so
container probes work (``/readyz`` shows its details only to key holders when
reads need a key).

Sessions end ``services.auth.session_ttl_s`` after they were opened. A client
that sends more than ``services.auth.max_failed_logins`` wrong keys within a
minute gets 429 until the minute has passed, whatever it sends.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from coral_inference.webapp.errors import ApiError, UnauthorizedError

logger = logging.getLogger("coral_inference.webapp.auth")

SESSION_COOKIE = "coral_session"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MAX_SESSIONS = 1024
FAILURE_WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 4096


def hash_key(key: str) -> str:
    """The digest to put in ``services.auth.api_key_hashes`` for ``key``.

    >>> hash_key("s3cret")[:12]
    '1ec1c26b50d5'
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for 0.0.0.0 and LAN addresses."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class AuthPolicy:
    """Who may do what; one per app."""

    mode: str  # auto | on | off
    bound_host: str
    header: str = "X-API-Key"
    key_hashes: list[str] = field(default_factory=list)
    generated_key: str | None = None  # set when a key had to be made up at start
    session_ttl_s: float = 12 * 3600.0
    max_failed_logins: int = 10
    _sessions: dict[str, float] = field(
        default_factory=dict, repr=False
    )  # token -> expiry (monotonic)
    _failures: dict[str, deque[float]] = field(
        default_factory=dict, repr=False
    )  # client -> failure times
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_config(cls, auth: Any, bound_host: str) -> AuthPolicy:
        policy = cls(
            mode=auth.enabled,
            bound_host=bound_host,
            header=auth.header,
            key_hashes=list(auth.api_key_hashes),
            session_ttl_s=auth.session_ttl_s,
            max_failed_logins=auth.max_failed_logins,
        )
        if policy.mode == "off" and not is_loopback(bound_host):
            logger.warning(
                "!!! services.auth.enabled is off and the control plane listens on %s: ANYONE who can reach "
                "this address can start pipelines, open cameras and read recordings. Set services.auth.enabled "
                "to auto or on, or bind to 127.0.0.1 !!!",
                bound_host,
            )
        if policy.mode != "off" and not policy.key_hashes:
            # Never run with mutations open and no way in: make a key for this run. The key itself never
            # goes through logging (log files and journals keep it); the CLI prints it to the console once.
            policy.generated_key = generate_key()
            policy.key_hashes = [hash_key(policy.generated_key)]
            logger.warning(
                "no API key configured (services.auth.api_key_hashes): this run made one, shown once on the "
                "console — make a permanent one with: coral-runtime web hash-key",
            )
        return policy

    @property
    def reads_need_key(self) -> bool:
        return self.mode == "on" or (self.mode == "auto" and not is_loopback(self.bound_host))

    def requires_key(self, method: str, path: str) -> bool:
        if self.mode == "off" or path in OPEN_PATHS or method == "OPTIONS":
            return False
        return method not in READ_METHODS or self.reads_need_key

    def is_key_holder(self, key: str | None, session: str | None) -> bool:
        """True when the request carries an accepted key or a live session (no error, no counting)."""
        if self.mode == "off":
            return True
        return bool(key and self.key_matches(key)) or bool(session and self.session_valid(session))

    def key_matches(self, key: str) -> bool:
        digest = hash_key(key)
        # Compare against every digest so timing says nothing about which one matched.
        matched = False
        for known in self.key_hashes:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def check(
        self,
        method: str,
        path: str,
        key: str | None,
        session: str | None,
        *,
        client: str = "unknown",
        force: bool = False,
    ) -> None:
        """Raise ``UnauthorizedError`` unless the request may go on (``force``: even where keys are optional)."""
        if not force and not self.requires_key(method, path):
            return
        if self.mode == "off":
            return
        if key:
            self._refuse_if_throttled(client)
            if self.key_matches(key):
                return
            self._count_failure(client)
            raise UnauthorizedError("the API key is not accepted", code="invalid_api_key")
        if session and self.session_valid(session):
            return
        raise UnauthorizedError(
            f"this request needs an API key: send it in the {self.header} header "
            "(make one with: coral-runtime web hash-key)",
            code="missing_api_key" if not session else "session_expired",
        )

    def open_session(self, key: str, client: str = "unknown") -> str:
        self._refuse_if_throttled(client)
        if not self.key_matches(key):
            self._count_failure(client)
            raise UnauthorizedError("the API key is not accepted", code="invalid_api_key")
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            for known, expiry in list(self._sessions.items()):
                if expiry <= now:
                    del self._sessions[known]
            if len(self._sessions) >= MAX_SESSIONS:  # the oldest session goes first
                del self._sessions[min(self._sessions, key=self._sessions.__getitem__)]
            self._sessions[token] = now + self.session_ttl_s
        return token

    def close_session(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def session_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._sessions.get(token)
            if expiry is None:
                return False
            if expiry <= time.monotonic():
                del self._sessions[token]
                return False
            return True

    def _count_failure(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if client not in self._failures and len(self._failures) >= MAX_TRACKED_CLIENTS:
                self._failures.clear()  # a flood of addresses: forget, rather than grow without bound
            self._failures.setdefault(client, deque()).append(now)

    def _refuse_if_throttled(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._failures.get(client)
            if not times:
                return
            while times and now - times[0] > FAILURE_WINDOW_S:
                times.popleft()
            if len(times) < self.max_failed_logins:
                return
            retry = FAILURE_WINDOW_S - (now - times[0])
        raise ApiError(
            f"too many wrong API keys from {client} (services.auth.max_failed_logins={self.max_failed_logins} "
            f"per minute); try again in {retry:.0f} s",
            code="too_many_failed_logins",
            status=429,
            details={"retry_after_s": round(retry, 1)},
        )
