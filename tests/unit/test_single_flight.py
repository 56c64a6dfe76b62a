"""Single flight: concurrent identical searches share one run, and nothing outlives it."""

from __future__ import annotations

import asyncio

import pytest

from services.search.single_flight import SingleFlight


class Work:
    def __init__(self, result: str = "answer", error: Exception | None = None) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.result, self.error = result, error
        self.cancelled = False

    async def __call__(self) -> str:
        self.runs += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error:
            raise self.error
        return f"{self.result} {self.runs}"


async def test_concurrent_callers_of_one_key_share_one_run_and_the_next_runs_afresh() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work()
    callers = [asyncio.create_task(flights.run("q", work)) for _ in range(3)]
    other = asyncio.create_task(flights.run("other", work))
    await asyncio.sleep(0)
    work.release.set()
    results = await asyncio.gather(*callers)
    assert [answer for answer, _ in results] == ["answer 1"] * 3
    assert [shared for _, shared in results] == [False, True, True]
    assert (await other)[0] == "answer 2" and work.runs == 2
    assert flights.in_flight() == 0
    assert await flights.run("q", work) == ("answer 3", False)


async def test_every_caller_gets_the_runs_exception() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work(error=ValueError("recall failed"))
    callers = [asyncio.create_task(flights.run("q", work)) for _ in range(2)]
    await asyncio.sleep(0)
    work.release.set()
    for caller in callers:
        with pytest.raises(ValueError, match="recall failed"):
            await caller
    assert work.runs == 1


async def test_a_caller_that_gives_up_leaves_the_run_to_the_others_the_last_one_cancels_it() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work()
    first = asyncio.create_task(flights.run("q", work))
    second = asyncio.create_task(flights.run("q", work))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    assert not work.cancelled
    work.release.set()
    assert await second == ("answer 1", True)

    alone = asyncio.create_task(flights.run("q", Work()))
    await asyncio.sleep(0)
    alone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await alone
    await asyncio.sleep(0)
    assert flights.in_flight() == 0
