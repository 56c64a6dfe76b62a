from __future__ import annotations

import pytest

from atelier.serving.circuit_breaker import BreakerSettings, CircuitBreaker, CircuitOpen, State


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(
        "triton", BreakerSettings(window=50, failure_rate=0.5, minimum_calls=10, open_s=5, half_open_calls=2), clock
    )


def _calls(breaker: CircuitBreaker, outcomes: list[bool]) -> None:
    for success in outcomes:
        breaker.check()
        breaker.record(success)


def test_opens_at_half_failures_over_the_window_once_enough_calls_are_seen() -> None:
    breaker = _breaker(Clock())
    _calls(breaker, [True] * 5 + [False] * 4)
    assert breaker.state is State.CLOSED  # fewer than minimum_calls
    _calls(breaker, [False])  # 5 failures of 10
    assert breaker.state is State.OPEN
    with pytest.raises(CircuitOpen, match="triton"):
        breaker.check()


def test_stays_closed_below_the_failure_rate() -> None:
    breaker = _breaker(Clock())
    _calls(breaker, [True, True, False] * 16 + [True, True])  # 16 of 50 failed
    assert breaker.state is State.CLOSED


def test_only_the_last_window_counts() -> None:
    breaker = _breaker(Clock())
    _calls(breaker, [False] * 4 + [True] * 50)
    _calls(breaker, [False] * 24)  # 24 of the last 50
    assert breaker.state is State.CLOSED
    _calls(breaker, [False])  # 25 of 50
    assert breaker.state is State.OPEN


def test_half_opens_after_the_wait_and_closes_when_the_probes_succeed() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    _calls(breaker, [False] * 10)
    clock.now = 4.9
    assert breaker.state is State.OPEN
    clock.now = 5.0
    assert breaker.state is State.HALF_OPEN
    breaker.check()
    breaker.check()
    with pytest.raises(CircuitOpen):
        breaker.check()  # only two probes at a time
    breaker.record(True)
    breaker.record(True)
    assert breaker.state is State.CLOSED


def test_a_failed_probe_opens_it_again() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    _calls(breaker, [False] * 10)
    clock.now = 5.0
    breaker.check()
    breaker.record(False)
    assert breaker.state is State.OPEN
    clock.now = 9.9
    assert breaker.state is State.OPEN
