"""Text search end to end through Envoy (REST and gRPC) on a small synthetic catalogue."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest
from pymilvus import MilvusClient

from atelier.edge.client import edge_channel, key_headers
from atelier.serving.article_index import IndexSettings
from atelier.stack.launcher import Stack
from fashion.v1 import article_pb2, search_service_pb2, search_service_pb2_grpc


def _call(stack: Stack, path: str, body: bytes | None = None) -> tuple[int, dict]:
    url = f"http://{stack.endpoints.address(stack.endpoints.envoy_port)}{path}"
    request = urllib.request.Request(
        url, data=body, headers={**key_headers(), **({"content-type": "application/json"} if body else {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _search(stack: Stack, **params: object) -> tuple[int, dict]:
    return _call(stack, "/v1/search?" + urllib.parse.urlencode(params, doseq=True))


def _violations(body: dict) -> list[str]:
    return [v["field"] for d in body.get("details", []) for v in d.get("fieldViolations", [])]


@pytest.mark.parametrize(
    ("query", "colour", "product_type"),
    [("black trousers", "Black", "Trousers"), ("red dress", "Red", "Dress")],
)
def test_attribute_queries_return_mostly_matching_articles(
    catalog: int, stack: Stack, query: str, colour: str, product_type: str
) -> None:
    status, body = _search(stack, query=query, k=10)
    assert status == 200, body
    articles = [r["article"] for r in body["results"]]
    assert len(articles) == 10
    matching_type = sum(a["productType"] == product_type for a in articles)
    matching_colour = sum(colour.lower() in a["colour"].lower() for a in articles)
    assert matching_type >= 7, articles
    assert matching_colour >= 6, articles


def test_results_are_ranked_and_carry_the_article(catalog: int, stack: Stack) -> None:
    status, body = _search(stack, query="slim fit jeans", k=5)
    assert status == 200
    results = body["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    first = results[0]["article"]
    assert len(first["articleId"]) == 10 and first["name"] and first["productType"] and first["colour"]
    assert {t["stage"] for t in body["timings"]} >= {"ann"}


def test_post_body_and_grpc_give_the_same_answer(catalog: int, stack: Stack) -> None:
    _, by_get = _search(stack, query="blue denim jacket", k=5)
    status, by_post = _call(stack, "/v1/search", json.dumps({"query": "blue denim jacket", "k": 5}).encode())
    assert status == 200
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        reply = search_service_pb2_grpc.SearchServiceStub(channel).SearchText(
            search_service_pb2.SearchTextRequest(query="blue denim jacket", k=5), timeout=10
        )
    ids = [r["article"]["articleId"] for r in by_get["results"]]
    assert ids == [r["article"]["articleId"] for r in by_post["results"]]
    assert ids == [r.article.article_id for r in reply.results]


def test_filters_are_honoured(catalog: int, stack: Stack) -> None:
    status, body = _search(stack, query="jacket", k=20, **{"filter.colours": "black", "filter.indexGroups": "Menswear"})
    assert status == 200, body
    assert body["results"], "the synthetic catalogue has black menswear"
    assert all(r["article"]["colour"] == "Black" for r in body["results"])
    assert all(r["article"]["indexGroup"] == "Menswear" for r in body["results"])
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        reply = search_service_pb2_grpc.SearchServiceStub(channel).SearchText(
            search_service_pb2.SearchTextRequest(
                query="dress", k=10, filter=article_pb2.ArticleFilter(colours=["Red", "Pink"])
            ),
            timeout=10,
        )
    assert reply.results and {r.article.colour for r in reply.results} <= {"Red", "Pink"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 600}, "query"),
        ({"query": "jeans", "k": 101}, "k"),
        ({"query": "jeans", "k": -1}, "k"),
        ({"query": "jeans", "filter.colours": "Ultraviolet"}, "filter.colours"),
    ],
)
def test_bad_input_is_400_naming_the_field(catalog: int, stack: Stack, params: dict, field: str) -> None:
    status, body = _search(stack, **params)
    assert status == 400, body
    assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert field in _violations(body), body


def test_unknown_filter_field_and_malformed_json_are_400(catalog: int, stack: Stack) -> None:
    status, body = _search(stack, query="jeans", **{"filter.fabric": "denim"})
    assert status == 400 and "fabric" in body["message"]
    status, body = _call(stack, "/v1/search", b'{"query": "jeans", "k": "ten"}')
    assert status == 400 and "k" in body["message"]
    status, body = _call(stack, "/v1/search", b'{"query": "jeans"')
    assert status == 400


def test_grpc_bad_input_is_invalid_argument(catalog: int, stack: Stack) -> None:
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            search_service_pb2_grpc.SearchServiceStub(channel).SearchText(
                search_service_pb2.SearchTextRequest(query="", k=500), timeout=10
            )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "query" in raised.value.details() and "k" in raised.value.details()


def test_reload_upserts_without_duplicates(catalog: int, stack: Stack, reload_catalog) -> None:
    result = reload_catalog()
    assert result.embedded == 0 and result.skipped_unchanged == catalog
    client = MilvusClient(uri=f"http://{stack.endpoints.address(stack.endpoints.milvus_port)}")
    try:
        rows = client.query(
            IndexSettings().collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
    finally:
        client.close()
    assert rows[0]["count(*)"] == catalog
