from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.search.embedding_cache import EmbeddingCache


async def test_hits_after_first_miss_and_evicts_least_recently_used() -> None:
    calls: list[str] = []

    async def compute(query: str) -> np.ndarray:
        calls.append(query)
        return np.array([len(query)], dtype=np.float32)

    cache = EmbeddingCache(2, compute)
    assert (await cache.get("a"))[1] is False
    assert (await cache.get("a"))[1] is True
    await cache.get("bb")
    await cache.get("a")  # "a" is now the most recent
    await cache.get("ccc")  # evicts "bb"
    assert len(cache) == 2
    assert (await cache.get("bb"))[1] is False
    assert calls == ["a", "bb", "ccc", "bb"]


async def test_concurrent_misses_share_one_computation() -> None:
    calls = 0

    async def compute(query: str) -> np.ndarray:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return np.ones(2, dtype=np.float32)

    cache = EmbeddingCache(10, compute)
    results = await asyncio.gather(*(cache.get("same") for _ in range(5)))
    assert calls == 1
    assert all(np.array_equal(vector, np.ones(2)) for vector, _ in results)


async def test_failures_reach_every_waiter_and_are_not_cached() -> None:
    attempts = 0

    async def compute(query: str) -> np.ndarray:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise TimeoutError("triton is slow")

    cache = EmbeddingCache(10, compute)
    outcomes = await asyncio.gather(*(cache.get("q") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, TimeoutError) for o in outcomes)
    with pytest.raises(TimeoutError):
        await cache.get("q")
    assert attempts == 2 and len(cache) == 0
