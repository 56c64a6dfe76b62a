"""Stage timings of a search: one mechanism, shared by the tasks a stage starts."""

from __future__ import annotations

import asyncio

import pytest

from services.search import timings


async def test_stages_record_their_milliseconds_into_the_request_that_runs_them() -> None:
    async def side(name: str) -> None:
        with timings.stage(name):
            await asyncio.sleep(0.01)

    with timings.collect() as stages:
        with timings.stage("embed") as embedding:
            embedding.rename("embed_cached")
        await asyncio.gather(side("clip_image"), side("clip_text"))  # parallel recalls share the timings
    assert set(stages) == {"embed_cached", "clip_image", "clip_text"}
    assert stages["clip_image"] >= 10
    assert [t.stage for t in timings.as_proto(stages)] == list(stages)


async def test_a_failed_stage_is_not_recorded_and_nothing_leaks_between_requests() -> None:
    with timings.collect() as first:
        with pytest.raises(RuntimeError), timings.stage("ann"):
            raise RuntimeError("milvus down")
    with timings.collect() as second:
        with timings.stage("popular"):
            pass
    assert first == {} and set(second) == {"popular"}
