"""The search servicer's answers that need no dependency: vision switched off."""

from __future__ import annotations

import grpc
import pytest

from fashion.v1 import search_service_pb2 as pb
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
    servicer = SearchServicer(None, text_only, RequestLimits(), None)  # type: ignore[arg-type]
    context = FakeContext()
    with pytest.raises(Aborted):
        await getattr(servicer, method)(request_message, context)
    assert context.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "VISION_ENABLED=0" in context.details and "atelier models train-clip" in context.details
