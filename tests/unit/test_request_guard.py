"""The request guard every service runs behind (atelier.serving.request_guard) and its wire walker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from atelier.serving.request_guard import RequestGuard
from atelier.serving.wire import invalid_utf8_field
from fashion.v1 import events_service_pb2 as events_pb
from fashion.v1 import features_service_pb2 as features_pb
from fashion.v1 import ranker_service_pb2 as pb
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc
from fashion.v1 import search_service_pb2 as search_pb
from tests.grpc_support import field_violations, raw_method

RANK = "/fashion.v1.RankerService/Rank"


def _with_bad_utf8(message: object, good: str) -> bytes:
    """The message's bytes with the string `good` replaced by as many bytes that are not UTF-8."""
    data = message.SerializeToString()
    assert data.count(good.encode()) == 1
    return data.replace(good.encode(), b"\xff\xfe" + b"x" * (len(good) - 2))


# --- the wire walker ---


@pytest.mark.parametrize(
    ("message", "bad", "path"),
    [
        (search_pb.SearchTextRequest(query="jeans", user_id="u1"), "jeans", "query"),
        (search_pb.SearchTextRequest(query="jeans", user_id="u1"), "u1", "user_id"),
        (events_pb.RecordClickRequest(click=events_pb.ClickEvent(user_id="u1", item_id="a1")), "a1", "click.item_id"),
        (features_pb.BatchGetItemSignalsRequest(article_ids=["a1", "b2", "c3"]), "c3", "article_ids[2]"),
        (
            pb.RankRequest(candidates=[pb.RankCandidate(article_id="a1"), pb.RankCandidate(article_id="b2")]),
            "b2",
            "candidates[1].article_id",
        ),
    ],
)
def test_names_the_string_field_that_is_not_utf8(message: object, bad: str, path: str) -> None:
    data = _with_bad_utf8(message, bad)
    with pytest.raises(Exception, match="Error parsing"):
        type(message).FromString(data)
    assert invalid_utf8_field(data, message.DESCRIPTOR) == path


def test_bytes_fields_and_valid_messages_have_no_culprit() -> None:
    image = search_pb.SearchImageRequest(image=b"\xff\xfe\x00", k=3)
    assert invalid_utf8_field(image.SerializeToString(), image.DESCRIPTOR) is None
    text = search_pb.SearchTextRequest(query="jeans é", k=3)
    assert invalid_utf8_field(text.SerializeToString(), text.DESCRIPTOR) is None


@pytest.mark.parametrize("data", [b"\x0a\x05ab", b"\x0a", b"\xff\xff\xff", b"\x0b\x0c", b"\x08\x80"])
def test_malformed_bytes_have_no_culprit_and_do_not_raise(data: bytes) -> None:
    assert invalid_utf8_field(data, search_pb.SearchTextRequest.DESCRIPTOR) is None


# --- the guard on a real grpc.aio server ---


class _Ranker(pb_grpc.RankerServiceServicer):
    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        if request.user_id == "boom":
            raise ValueError("secret internals /srv/atelier/ranker.py")
        if request.user_id == "refused":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "refused on purpose")
        return pb.RankResponse(items=[pb.RankedItem(article_id=c.article_id) for c in request.candidates])


@pytest.fixture(scope="module")
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[RequestGuard()], options=[("grpc.max_receive_message_length", 4096)])
    pb_grpc.add_RankerServiceServicer_to_server(_Ranker(), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


def _raw(channel: grpc.aio.Channel, method: str = RANK) -> grpc.aio.UnaryUnaryMultiCallable:
    return raw_method(channel, method)


async def test_valid_requests_pass_untouched(channel: grpc.aio.Channel) -> None:
    request = pb.RankRequest(candidates=[pb.RankCandidate(article_id="a1")])
    reply = await pb_grpc.RankerServiceStub(channel).Rank(request, timeout=5)
    assert [item.article_id for item in reply.items] == ["a1"]
    check = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert check.status == health_pb2.HealthCheckResponse.SERVING


async def test_invalid_utf8_is_invalid_argument_naming_the_field(channel: grpc.aio.Channel) -> None:
    data = _with_bad_utf8(pb.RankRequest(candidates=[pb.RankCandidate(article_id="a1")]), "a1")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _raw(channel)(data, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == ["candidates[0].article_id"]
    assert "candidates[0].article_id" in raised.value.details()


@pytest.mark.parametrize(
    ("method", "data"),
    [(RANK, b"\x0a\x05ab"), (RANK, b"\xff\xff\xff\xff"), ("/grpc.health.v1.Health/Check", b"\x0a\x09abc")],
)
async def test_malformed_protobuf_is_invalid_argument_without_class_names(
    channel: grpc.aio.Channel, method: str, data: bytes
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _raw(channel, method)(data, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid" in raised.value.details()
    assert "class" not in raised.value.details() and "Error" not in raised.value.details()


async def test_an_unexpected_exception_is_internal_with_a_generic_message(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    metadata = (("x-request-id", "req-42"),)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await pb_grpc.RankerServiceStub(channel).Rank(pb.RankRequest(user_id="boom"), metadata=metadata, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error (request id req-42)"
    logged = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert logged and logged[0].request_id == "req-42" and "ValueError" in logged[0].exc_text


async def test_the_servicers_own_status_passes_through(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await pb_grpc.RankerServiceStub(channel).Rank(pb.RankRequest(user_id="refused"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == "refused on purpose"


async def test_an_oversized_request_is_resource_exhausted(channel: grpc.aio.Channel) -> None:
    request = pb.RankRequest(user_id="u" * 5000)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await pb_grpc.RankerServiceStub(channel).Rank(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
