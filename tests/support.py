"""Helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold within the timeout; the message says which."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    *,
    message: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Raises ``WaitTimeout`` (an ``AssertionError``, so pytest shows it as a failed
    assertion) naming ``message`` or the predicate when ``timeout`` seconds pass first.
    The predicate is always tried once more at the deadline.
    """
    deadline = clock() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if clock() >= deadline:
            break
        sleep(interval)
    value = predicate()
    if value:
        return value
    what = message or getattr(predicate, "__name__", repr(predicate))
    raise WaitTimeout(f"not true after {timeout:g} s: {what}")
