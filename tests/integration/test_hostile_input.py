"""Hostile input at the edge (REST and gRPC through Envoy): ids that could alias keys, clicks on
articles that do not exist, event ids shared by users, invalid UTF-8, malformed and oversized
protobuf. Every answer is a status naming what is wrong, never a Python exception."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import grpc
import pytest

from atelier.edge.client import edge_channel
from atelier.stack.launcher import Stack
from fashion.v1 import search_service_pb2
from tests.grpc_support import field_violations, raw_method
from tests.integration.support import edge

# What would betray a Python exception in an answer.
LEAK = re.compile(r"<class |Traceback|\b[A-Z]\w*(Error|Exception)\b|File \"")


def _clean(text: str) -> str:
    assert not LEAK.search(text), text
    return text


def _fields(body: dict) -> list[str]:
    _clean(str(body))
    return [v["field"] for d in body.get("details", []) for v in d.get("fieldViolations", [])]


def _eventually(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _recent(stack: Stack, user: str) -> list[str]:
    status, body = edge.call(stack, "GET", f"/v1/users/{user}/features")
    assert status == 200, body
    return [c["articleId"] for c in body["userFeatures"].get("recentClicks", [])]


# --- clicks ---


def test_the_same_event_id_is_per_user(catalog: int, stack: Stack, article_ids: list[str]) -> None:
    run = uuid.uuid4().hex[:8]
    first, second = f"u-{run}-a", f"u-{run}-b"
    event_id = f"shared-{run}"
    for user in (first, second):
        status, body = edge.click(stack, user, article_ids[20], eventId=event_id)
        assert status == 200 and body["eventId"] == event_id, body
    # Both users' clicks are applied: neither is taken for the other's duplicate.
    _eventually(lambda: _recent(stack, first) == [article_ids[20]] and _recent(stack, second) == [article_ids[20]], 15)
    # The same user sending it again: applied once. A later click marks when the stream got that far.
    assert edge.click(stack, first, article_ids[21], eventId=event_id)[0] == 200
    assert edge.click(stack, first, article_ids[22])[0] == 200
    _eventually(lambda: article_ids[22] in _recent(stack, first), 15)
    assert _recent(stack, first) == [article_ids[22], article_ids[20]]


def test_a_click_on_an_article_not_in_the_catalogue_is_refused(catalog: int, stack: Stack) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    status, body = edge.click(stack, user, "FAKE-ITEM")
    assert status == 400, body
    assert _fields(body) == ["click.item_id"]
    assert "FAKE-ITEM" in body["message"] and "catalogue" in body["message"]
    status, body = edge.call(stack, "GET", "/v1/popular?window=POPULARITY_WINDOW_GLOBAL&k=100")
    assert status == 200 and "FAKE-ITEM" not in {item["article"]["articleId"] for item in body["items"]}
    assert _recent(stack, user) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/events/clicks", {"userId": "u1", "itemId": "0117860004:clicks"}, "click.item_id"),
        ("POST", "/v1/events/clicks", {"userId": "u1:recent", "itemId": "0108775015"}, "click.user_id"),
        ("POST", "/v1/events/clicks", {"userId": "u1", "itemId": "0108775015", "sessionId": "s:1"}, "click.session_id"),
        ("POST", "/v1/events/clicks", {"userId": "u1", "itemId": "0108775015", "eventId": "a:b"}, "click.event_id"),
        ("GET", "/v1/users/u1:recent/features", None, "user_id"),
        ("GET", "/v1/search?query=jeans&userId=u1:affinity", None, "user_id"),
    ],
)
def test_an_id_that_could_name_another_key_is_refused(
    catalog: int, stack: Stack, method: str, path: str, body: dict | None, field: str
) -> None:
    if body is not None:
        body = {"position": 0, "source": "search", "device": "web", **body}
    status, reply = edge.call(stack, method, path, body)
    assert status == 400, reply
    assert field in _fields(reply)


# --- invalid UTF-8 ---


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/search?query=%FF%FE", "query"),
        ("/v1/search?query=jeans&userId=%C3%28", "user_id"),
        ("/v1/users/%FF%FE/features", "user_id"),
    ],
)
def test_invalid_utf8_is_400_naming_the_field(catalog: int, stack: Stack, path: str, field: str) -> None:
    status, body = edge.call(stack, "GET", path)
    assert status == 400, body
    assert _fields(body) == [field]
    assert field in body["message"]


# --- gRPC ---


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05ab",  # a query of 5 bytes with 2 sent
        b"\xff\xff\xff\xff\xff",  # not protobuf at all
        b"\x0b\x0c",  # a group: never valid here
    ],
)
def test_malformed_protobuf_is_invalid_argument(catalog: int, stack: Stack, data: bytes) -> None:
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            raw_method(channel, "/fashion.v1.SearchService/SearchText")(data, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    _clean(raised.value.details())


def test_invalid_utf8_over_grpc_names_the_field(catalog: int, stack: Stack) -> None:
    valid = search_service_pb2.SearchTextRequest(query="jeans", k=3).SerializeToString()
    data = valid.replace(b"jeans", b"\xff\xfeans")
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            raw_method(channel, "/fashion.v1.SearchService/SearchText")(data, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == ["query"]
    _clean(raised.value.details())


def test_an_oversized_message_is_resource_exhausted(catalog: int, stack: Stack) -> None:
    """Over the service's 4 MiB request limit (DEFAULT_MAX_REQUEST_BYTES), under the edge's body limit."""
    data = search_service_pb2.SearchTextRequest(query="x" * (5 * 1024 * 1024)).SerializeToString()
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            raw_method(channel, "/fashion.v1.SearchService/SearchText")(data, timeout=30)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, raised.value.details()
    _clean(raised.value.details())
