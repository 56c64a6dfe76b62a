"""The search servicer's answers that need no dependency: vision switched off, a degraded answer's count."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import grpc
import pytest
from prometheus_client import REGISTRY

from fashion.v1 import search_service_pb2 as pb
from services.search.answers import Answer, Reason, degradation
from services.search.config import RequestLimits
from services.search.recall import Recalls
from services.search.servicer import SearchServicer


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("SearchImage", pb.SearchImageRequest(image=b"not even checked")),
        ("SearchHybrid", pb.SearchHybridRequest(query="red dress")),
    ],
)
async def test_with_vision_off_image_and_hybrid_search_name_the_setting(method: str, request_message: object) -> None:
    text_only = Recalls(text=None)  # type: ignore[arg-type]
    servicer = SearchServicer(None, text_only, RequestLimits(), None, None)  # type: ignore[arg-type]
    context = FakeContext()
    with pytest.raises(Aborted):
        await getattr(servicer, method)(request_message, context)
    assert context.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "VISION_ENABLED=0" in context.details and "atelier models train-clip" in context.details


async def test_a_degraded_answer_counts_once_per_reason() -> None:
    timeout = Reason.DEGRADATION_REASON_INFERENCE_TIMEOUT
    lost = [degradation(timeout, "triton", "popular", "slow"), degradation(timeout, "milvus", "popular", "slow")]

    class DegradedPipeline:
        async def run(self, *_: object, **__: object) -> Answer:
            return Answer([], lost)

    def count() -> float:
        return REGISTRY.get_sample_value("search_degraded_total", {"reason": "inference_timeout"}) or 0.0

    before = count()
    recalls = Recalls(text=object())  # type: ignore[arg-type]
    servicer = SearchServicer(DegradedPipeline(), recalls, RequestLimits(), SimpleNamespace(values=None), None)  # type: ignore[arg-type]
    response = await servicer.SearchText(pb.SearchTextRequest(query="red dress"), FakeContext())  # type: ignore[arg-type]
    assert len(response.degradations) == 2
    assert count() == before + 1


async def test_identical_searches_in_flight_share_one_run_and_report_its_rerank_depth() -> None:
    class SlowPipeline:
        runs = 0

        async def run(self, *_: object, **__: object) -> Answer:
            SlowPipeline.runs += 1
            await asyncio.sleep(0.05)
            return Answer([], rerank_depth=40)

    recalls = Recalls(text=object())  # type: ignore[arg-type]
    servicer = SearchServicer(SlowPipeline(), recalls, RequestLimits(), SimpleNamespace(values=None), None)  # type: ignore[arg-type]
    same = pb.SearchTextRequest(query="red dress", user_id="u1")
    other = pb.SearchTextRequest(query="red dress", user_id="u2")  # another user: not the same search
    responses = await asyncio.gather(
        *(servicer.SearchText(request, FakeContext()) for request in (same, same, other))  # type: ignore[arg-type]
    )
    assert SlowPipeline.runs == 2
    assert [response.rerank_depth for response in responses] == [40, 40, 40]
    await servicer.SearchText(same, FakeContext())  # type: ignore[arg-type]
    assert SlowPipeline.runs == 3  # nothing kept once the run is over
