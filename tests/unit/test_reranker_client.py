"""Search's reranker client: a query's pairs as one request per reranker instance, answered in order."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import grpc
import numpy as np
import pytest

from atelier.inference.signatures import PASSAGE, QUERY, SCORE
from atelier.serving.dependency import RemoteError
from atelier.serving.model_readiness import ModelReadiness, instance_count
from atelier.serving.reranking import Reranker, slices


class FakeTriton:
    """Scores each passage by its number; the request holding `failing` fails after the others started."""

    def __init__(self, failing: str | None = None) -> None:
        self.requests: list[list[str]] = []
        self.cancelled = 0
        self.failing = failing

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], timeout_s: float
    ) -> dict[str, np.ndarray]:
        passages = [p.decode() if isinstance(p, bytes) else str(p) for p in inputs[PASSAGE].reshape(-1)]
        assert len(inputs[QUERY].reshape(-1)) == len(passages)
        self.requests.append(passages)
        try:
            await asyncio.sleep(0.01 if self.failing in passages else 0.2)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.failing in passages:
            raise RemoteError(grpc.StatusCode.INTERNAL, "instance failed")
        return {SCORE: np.array([[float(p.split()[1])] for p in passages], dtype=np.float32)}


PASSAGES = [f"passage {i}" for i in range(7)]


def test_slices_are_contiguous_even_and_never_empty() -> None:
    assert slices(7, 2) == [(0, 3), (3, 7)]
    assert slices(100, 2) == [(0, 50), (50, 100)]
    assert slices(2, 4) == [(0, 1), (1, 2)]
    assert slices(5, 1) == [(0, 5)] == slices(5, 0)


async def test_the_pairs_go_as_one_request_per_instance_and_come_back_in_order() -> None:
    triton = FakeTriton()
    scores = await Reranker(triton, timeout_s=1).score("q", PASSAGES, calls=2)  # type: ignore[arg-type]
    assert sorted(map(len, triton.requests)) == [3, 4]
    np.testing.assert_array_equal(scores, np.arange(7, dtype=np.float32))
    assert scores.dtype == np.float32


async def test_one_request_failing_fails_the_call_and_cancels_the_others() -> None:
    triton = FakeTriton(failing="passage 0")
    with pytest.raises(RemoteError, match="instance failed"):
        await Reranker(triton, timeout_s=1).score("q", PASSAGES, calls=2)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert triton.cancelled == 1


def test_instances_are_counted_from_the_model_configuration() -> None:
    assert instance_count({"instance_group": [{"kind": "KIND_CPU", "count": 2}]}) == 2
    assert instance_count({"instance_group": [{"count": 1}, {"count": 3}]}) == 4
    assert instance_count({}) == 1


class WatchedTriton:
    def __init__(self) -> None:
        self.count = 2
        self.version = 1
        self.ready = True
        self.configs_read = 0

    async def model_ready(self, model: str, timeout_s: float) -> bool:
        return self.ready

    async def loaded_versions(self, model: str, timeout_s: float) -> list[int]:
        return [self.version] if self.ready else []

    async def model_config(self, model: str, timeout_s: float) -> dict[str, object]:
        self.configs_read += 1
        return {"instance_group": [{"kind": "KIND_CPU", "count": self.count}]}


async def test_the_instance_count_is_read_once_per_version_loaded() -> None:
    triton = WatchedTriton()
    watch = ModelReadiness(triton, ["reranker"], interval_s=60)  # type: ignore[arg-type]
    assert watch.instances("reranker") == 1  # unknown yet
    await watch.poll()
    await watch.poll()
    assert watch.instances("reranker") == 2 and triton.configs_read == 1
    triton.count, triton.version = 3, 2  # a new version with another count
    await watch.poll()
    assert watch.instances("reranker") == 3
    triton.ready = False  # reloaded (Triton restarted with another configuration)
    await watch.poll()
    triton.ready, triton.count = True, 1
    await watch.poll()
    assert watch.instances("reranker") == 1 and triton.configs_read == 3
