"""all_or_none: results in order, and the first failure cancels the rest."""

from __future__ import annotations

import asyncio

import pytest

from atelier.serving.gathering import all_or_none


async def test_the_results_come_in_the_order_asked_whatever_order_they_finish_in() -> None:
    async def after(seconds: float, value: int) -> int:
        await asyncio.sleep(seconds)
        return value

    assert await all_or_none([after(0.03, 1), after(0.0, 2), after(0.01, 3)]) == [1, 2, 3]
    assert await all_or_none([]) == []


async def _slow(n: int, cancelled: list[int], started: asyncio.Event | None = None) -> int:
    """n after 10 s, unless cancelled first (then n joins `cancelled`)."""
    if started is not None:
        started.set()
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        cancelled.append(n)
        raise
    return n


async def test_the_first_failure_cancels_the_others_and_is_raised_as_it_is() -> None:
    cancelled: list[int] = []

    async def failing() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await all_or_none([_slow(1, cancelled), failing(), _slow(2, cancelled)])
    await asyncio.sleep(0)  # the cancellations land
    assert sorted(cancelled) == [1, 2]


async def test_cancelling_the_caller_cancels_every_request() -> None:
    started = asyncio.Event()
    cancelled: list[int] = []
    caller = asyncio.ensure_future(all_or_none([_slow(1, cancelled, started), _slow(2, cancelled, started)]))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)
    assert sorted(cancelled) == [1, 2]
