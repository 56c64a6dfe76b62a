"""Explanations (template mode) through Envoy, REST and gRPC: the top N results say why they are
there, from the answer's own signals; a click shows up as the reason its article moved."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from atelier.edge.client import edge_channel
from atelier.stack.launcher import Stack
from fashion.v1 import search_service_pb2, search_service_pb2_grpc
from tests.integration.support import edge

QUERY = "black trousers"


def _camel(field: str) -> str:
    """A proto field name as REST JSON spells it: product_type -> productType."""
    first, *rest = field.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _search(stack: Stack, **params: object) -> list[dict]:
    status, body = edge.search(stack, query=QUERY, k=10, **params)
    assert status == 200, body
    return body["results"]


def test_the_top_n_results_carry_an_explanation_resting_on_the_query(catalog: int, stack: Stack) -> None:
    results = _search(stack, explainTop=3)
    assert [("explanation" in result) for result in results] == [True] * 3 + [False] * 7
    for result in results[:3]:
        explanation, article = result["explanation"], result["article"]
        assert explanation["source"] == "EXPLANATION_SOURCE_TEMPLATE"
        assert explanation["text"].startswith(f"{article['colour']} {article['productType'].lower()}".capitalize())
        for signal in explanation["signals"]:
            assert signal["kind"] == "EXPLANATION_SIGNAL_KIND_QUERY_ATTRIBUTE", "anonymous: the query's only"
            assert signal["value"] == article[_camel(signal["field"])], "the article's own value"
    black = [r for r in results[:3] if r["article"]["colour"] == "Black"]
    assert black and all('"black"' in r["explanation"]["text"] for r in black)
    assert all("explanation" not in result for result in _search(stack))  # off by default


def test_a_recent_click_is_the_reason_given_for_the_article_it_moved(catalog: int, stack: Stack) -> None:
    user = f"explained-{uuid.uuid4().hex[:8]}"
    clicked = _search(stack, userId=user)[6]["article"]["articleId"]
    status, body = edge.click(stack, user, clicked, position=7, query=QUERY)
    assert status == 200, body
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        results = _search(stack, userId=user, explainTop=10)
        moved = next((r for r in results if r["article"]["articleId"] == clicked and "behaviourScore" in r), None)
        if moved is not None:
            break
        time.sleep(0.2)
    assert moved is not None, "the click never reached the user's features"
    signals = moved["explanation"]["signals"]
    assert signals[0]["kind"] == "EXPLANATION_SIGNAL_KIND_RECENT_CLICK"
    assert signals[0]["boost"] == pytest.approx(1.5)
    assert "You looked at this recently." in moved["explanation"]["text"]


def test_grpc_explains_too_and_a_bad_explain_top_is_invalid_argument(catalog: int, stack: Stack) -> None:
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        search = search_service_pb2_grpc.SearchServiceStub(channel).SearchText
        reply = search(search_service_pb2.SearchTextRequest(query=QUERY, k=5, explain_top=2), timeout=15)
        assert [result.HasField("explanation") for result in reply.results] == [True, True, False, False, False]
        with pytest.raises(grpc.RpcError) as error:
            search(search_service_pb2.SearchTextRequest(query=QUERY, explain_top=11), timeout=15)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "explain_top" in error.value.details()


@pytest.mark.parametrize("value", [11, -1])
def test_a_bad_explain_top_is_400_naming_the_field(catalog: int, stack: Stack, value: int) -> None:
    status, body = edge.search(stack, query=QUERY, explainTop=value)
    assert status == 400, body
    fields = [v["field"] for d in body.get("details", []) for v in d.get("fieldViolations", [])]
    assert fields == ["explain_top"], body
