"""tests.support.wait_until, on an injected clock (no real sleeping)."""

from __future__ import annotations

import pytest

from tests.support import WaitTimeout, wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_truthy_value():
    clock = FakeClock()
    values = iter([0, None, "ready"])
    assert (
        wait_until(lambda: next(values), timeout=5, interval=1, clock=clock, sleep=clock.sleep)
        == "ready"
    )
    assert clock.sleeps == [1, 1]


def test_times_out_naming_the_condition_after_one_last_try():
    clock = FakeClock()
    calls = []

    def never() -> bool:
        calls.append(clock.now)
        return False

    with pytest.raises(WaitTimeout, match=r"not true after 2 s: the file appears"):
        wait_until(
            never,
            timeout=2,
            interval=0.5,
            message="the file appears",
            clock=clock,
            sleep=clock.sleep,
        )
    assert calls[-1] >= 2 and len(calls) == 6  # 0, 0.5, 1, 1.5, 2 and the last try
