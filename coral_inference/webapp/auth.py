"""API-key authentication of the web control plane.

Keys are stored as sha256 hex digests (``services.auth.api_key_hashes``); a
client sends the key in a header (``X-API-Key`` by default) or, for what a
browser fetches by itself (``<video src>``), in a session cookie obtained by
``POST /api/v1/auth/session``.

When is a key needed? ``enabled: off`` never, ``on`` always, ``auto`` for
mutating requests (anything but GET/HEAD/OPTIONS), and for every request when
the server listens beyond loopback. ``/healthz`` and ``/readyz`` stay open so
container probes work.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
from dataclasses import dataclass, field

from coral_inference.webapp.errors import UnauthorizedError

logger = logging.getLogger("coral_inference.webapp.auth")

SESSION_COOKIE = "coral_session"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MAX_SESSIONS = 1024


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
    _sessions: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_config(cls, auth: object, bound_host: str) -> AuthPolicy:
        policy = cls(mode=auth.enabled, bound_host=bound_host, header=auth.header,
                     key_hashes=list(auth.api_key_hashes))
        if policy.mode != "off" and not policy.key_hashes:
            # Never run with mutations open and no way in: make a key for this run and say so.
            policy.generated_key = generate_key()
            policy.key_hashes = [hash_key(policy.generated_key)]
            logger.warning(
                "no API key configured (services.auth.api_key_hashes); this run accepts the key %s — "
                "make a permanent one with: coral-runtime web hash-key", policy.generated_key,
            )
        return policy

    @property
    def reads_need_key(self) -> bool:
        return self.mode == "on" or (self.mode == "auto" and not is_loopback(self.bound_host))

    def requires_key(self, method: str, path: str) -> bool:
        if self.mode == "off" or path in OPEN_PATHS or method == "OPTIONS":
            return False
        return method not in READ_METHODS or self.reads_need_key

    def key_matches(self, key: str) -> bool:
        digest = hash_key(key)
        # Compare against every digest so timing says nothing about which one matched.
        matched = False
        for known in self.key_hashes:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def check(self, method: str, path: str, key: str | None, session: str | None) -> None:
        """Raise ``UnauthorizedError`` unless the request may go on."""
        if not self.requires_key(method, path):
            return
        if key:
            if self.key_matches(key):
                return
            raise UnauthorizedError("the API key is not accepted", code="invalid_api_key")
        if session and self.session_valid(session):
            return
        raise UnauthorizedError(
            f"this request needs an API key: send it in the {self.header} header "
            "(make one with: coral-runtime web hash-key)",
            code="missing_api_key",
        )

    def open_session(self, key: str) -> str:
        if not self.key_matches(key):
            raise UnauthorizedError("the API key is not accepted", code="invalid_api_key")
        token = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop()
            self._sessions.add(token)
        return token

    def close_session(self, token: str | None) -> None:
        with self._lock:
            self._sessions.discard(token or "")

    def session_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._sessions
