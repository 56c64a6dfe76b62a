"""The popularity fallback keeps its list a few seconds, and answers from an older copy, saying so,
when the features service fails too."""

from __future__ import annotations

import grpc
import pytest

from atelier.serving.circuit_breaker import BreakerSettings
from atelier.serving.dependency import Dependency, DependencyError, Failure
from fashion.v1 import article_pb2, degradation_pb2, features_service_pb2
from services.search.fallback import FRESH_S, STALE_S, PopularFallback

Reason = degradation_pb2.DegradationReason


class FakeFeatures:
    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def ListPopularItems(
        self,
        request: object,
        timeout: float,  # noqa: ASYNC109 - the gRPC stub's signature
    ) -> features_service_pb2.ListPopularItemsResponse:
        self.calls += 1
        if self.failing:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")
        items = [
            features_service_pb2.PopularItem(article=article_pb2.Article(article_id=f"a{i}", colour="Black"), score=1.0)
            for i in range(3)
        ]
        day = features_service_pb2.POPULARITY_WINDOW_DAY
        return features_service_pb2.ListPopularItemsResponse(items=items, window=day)


@pytest.fixture
async def fallback() -> tuple[PopularFallback, FakeFeatures, list[float]]:
    now = [100.0]
    fake = FakeFeatures()
    features = Dependency("features", BreakerSettings(), 0.1)
    yield PopularFallback(fake, features, clock=lambda: now[0]), fake, now  # type: ignore[arg-type]


def failed(component: str, timed_out: bool) -> DependencyError:
    return DependencyError(component, Failure.TIMED_OUT if timed_out else Failure.UNAVAILABLE, "down")


async def test_a_burst_of_fallbacks_costs_one_call(fallback: tuple[PopularFallback, FakeFeatures, list[float]]) -> None:
    popular, fake, now = fallback
    for _ in range(5):
        reply = await popular.answer(2, {}, failed("triton", timed_out=False))
    assert fake.calls == 1
    assert [r.article.article_id for r in reply.results] == ["a0", "a1"]
    now[0] += FRESH_S
    await popular.answer(2, {}, failed("triton", timed_out=False))
    assert fake.calls == 2


async def test_features_down_too_answers_from_the_kept_list_and_says_how_old(
    fallback: tuple[PopularFallback, FakeFeatures, list[float]],
) -> None:
    popular, fake, now = fallback
    await popular.answer(2, {}, failed("triton", timed_out=False))
    fake.failing = True
    now[0] += 30
    reply = await popular.answer(2, {}, failed("milvus", timed_out=True))
    assert len(reply.results) == 2
    first, stale = reply.degradations
    assert (first.component, first.reason) == ("milvus", Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT)
    assert stale.reason == Reason.DEGRADATION_REASON_STALE_DATA_ALLOWED
    assert "30 s ago" in stale.detail
    now[0] += STALE_S
    with pytest.raises(DependencyError):
        await popular.answer(2, {}, failed("milvus", timed_out=True))
