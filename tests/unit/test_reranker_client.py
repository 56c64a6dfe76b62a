"""Search's reranker client: a query's pairs as one request per reranker instance, answered in order."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import grpc
import numpy as np
import pytest

from atelier.inference.signatures import PASSAGE, QUERY, SCORE
from atelier.serving.dependency import RemoteError
from atelier.serving.model_readiness import ModelReadiness, Serving
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


def test_slices_are_one_per_instance_contiguous_even_and_never_empty() -> None:
    assert slices(7, Serving(2)) == [(0, 3), (3, 7)]
    assert slices(100, Serving(2, max_rows=64)) == [(0, 50), (50, 100)]
    assert slices(2, Serving(4)) == [(0, 1), (1, 2)]
    assert slices(5, Serving()) == [(0, 5)]


def test_no_slice_is_over_the_rows_a_request_may_have() -> None:
    assert slices(200, Serving(2, max_rows=64)) == [(0, 50), (50, 100), (100, 150), (150, 200)]
    assert slices(100, Serving(1, max_rows=64)) == [(0, 50), (50, 100)]
    assert slices(64, Serving(1, max_rows=64)) == [(0, 64)]


async def test_the_pairs_go_as_one_request_per_instance_and_come_back_in_order() -> None:
    triton = FakeTriton()
    scores = await Reranker(triton, timeout_s=1).score("q", PASSAGES, serving=Serving(2))  # type: ignore[arg-type]
    assert sorted(map(len, triton.requests)) == [3, 4]
    np.testing.assert_array_equal(scores, np.arange(7, dtype=np.float32))
    assert scores.dtype == np.float32


async def test_one_request_failing_fails_the_call_and_cancels_the_others() -> None:
    triton = FakeTriton(failing="passage 0")
    with pytest.raises(RemoteError, match="instance failed"):
        await Reranker(triton, timeout_s=1).score("q", PASSAGES, serving=Serving(2))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert triton.cancelled == 1


def test_how_triton_runs_a_model_is_read_from_its_configuration() -> None:
    config = {"max_batch_size": 64, "instance_group": [{"kind": "KIND_CPU", "count": 2}]}
    assert Serving.from_config(config) == Serving(instances=2, max_rows=64)
    assert Serving.from_config({"instance_group": [{"count": 1}, {"count": 3}]}) == Serving(4, 0)
    assert Serving.from_config({}) == Serving(1, 0)


class WatchedTriton:
    def __init__(self) -> None:
        self.count = 2
        self.version = 1
        self.ready = True
        self.config_answers = True
        self.configs_read = 0

    async def model_ready(self, model: str, timeout_s: float) -> bool:
        return self.ready

    async def loaded_versions(self, model: str, timeout_s: float) -> list[int]:
        return [self.version] if self.ready else []

    async def model_config(self, model: str, timeout_s: float) -> dict[str, object]:
        if not self.config_answers:
            raise RemoteError(grpc.StatusCode.UNAVAILABLE, "connection reset")
        self.configs_read += 1
        return {"max_batch_size": 64, "instance_group": [{"kind": "KIND_CPU", "count": self.count}]}


async def test_how_a_model_is_served_is_read_once_per_version_loaded() -> None:
    triton = WatchedTriton()
    watch = ModelReadiness(triton, ["reranker"], interval_s=60)  # type: ignore[arg-type]
    assert watch.serving("reranker") == Serving(1, 0)  # not known yet
    await watch.poll()
    await watch.poll()
    assert watch.serving("reranker") == Serving(2, 64) and triton.configs_read == 1
    triton.count, triton.version = 3, 2  # a new version with another count
    await watch.poll()
    assert watch.serving("reranker") == Serving(3, 64)
    triton.ready = False  # reloaded (Triton restarted with another configuration)
    await watch.poll()
    triton.ready, triton.count = True, 1
    await watch.poll()
    assert watch.serving("reranker") == Serving(1, 64) and triton.configs_read == 3


async def test_a_model_is_ready_only_once_its_configuration_is_known() -> None:
    triton = WatchedTriton()
    triton.config_answers = False
    watch = ModelReadiness(triton, ["reranker"], interval_s=60)  # type: ignore[arg-type]
    await watch.poll()
    assert not watch.ready("reranker")
    triton.config_answers = True
    await watch.poll()
    assert watch.ready("reranker") and watch.serving("reranker") == Serving(2, 64)
