"""Search's watch on Triton's models: ready when Triton says so, unchanged when Triton does not answer."""

from __future__ import annotations

import asyncio

import grpc

from atelier.serving.dependency import RemoteError
from atelier.serving.model_readiness import ModelReadiness


class FakeTriton:
    def __init__(self) -> None:
        self.ready: dict[str, bool] = {}
        self.down = False

    async def model_ready(self, model: str, timeout_s: float) -> bool:
        if self.down:
            raise RemoteError(grpc.StatusCode.UNAVAILABLE, "connection refused")
        return self.ready.get(model, False)

    async def loaded_versions(self, model: str, timeout_s: float) -> list[int]:
        return [1, 2] if self.ready.get(model) else []

    async def model_config(self, model: str, timeout_s: float) -> dict[str, object]:
        return {"instance_group": [{"count": 1}]}


async def test_a_model_is_ready_once_triton_says_so_and_a_silent_triton_changes_nothing() -> None:
    triton = FakeTriton()
    watch = ModelReadiness(triton, ["reranker", "clip_image"], interval_s=0.01)  # type: ignore[arg-type]
    await watch.start()
    try:
        assert not watch.ready("reranker") and not watch.ready("clip_image")
        triton.ready["reranker"] = True
        await asyncio.sleep(0.05)
        assert watch.ready("reranker") and not watch.ready("clip_image")
        assert watch.version("reranker") == 2 and watch.version("clip_image") is None
        triton.down = True  # calls fail on their own; the breaker, not the watch, deals with that
        await asyncio.sleep(0.05)
        assert watch.ready("reranker")
        triton.down, triton.ready["reranker"] = False, False  # unloaded
        await asyncio.sleep(0.05)
        assert not watch.ready("reranker")
        assert not watch.ready("not_watched")
    finally:
        await watch.stop()
