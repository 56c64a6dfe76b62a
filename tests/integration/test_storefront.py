"""The storefront page at the edge: GET / answers the page itself (no key needed: it holds none, it asks for
one), and what it calls answers as it expects: search with scores, a photo per card, a click."""

from __future__ import annotations

import urllib.request

from atelier.edge.client import key_headers
from atelier.serving.settings import ROOT
from atelier.stack.launcher import Stack
from tests.integration.support import edge


def test_the_page_is_served_at_the_root_without_a_key(stack: Stack) -> None:
    with urllib.request.urlopen(stack.endpoints.edge_url + "/", timeout=15) as response:
        assert response.status == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        page = response.read().decode()
    assert page == (ROOT / "envoy" / "storefront.html").read_text()
    assert "x-api-key" in page and "/v1/search" in page and "/v1/events/clicks" in page


def test_what_the_page_calls_answers_as_it_reads_it(stack: Stack, catalog: int) -> None:
    body = {"query": "black trousers", "k": 5, "userId": "demo-ada", "filter": {"colours": ["Black"]}}
    status, answer = edge.call(stack, "POST", "/v1/search", body)
    assert status == 200, answer
    first = answer["results"][0]
    assert {"rank", "retrievalScore", "article"} <= set(first) and "timings" in answer
    request = urllib.request.Request(
        f"{stack.endpoints.edge_url}/v1/articles/{first['article']['articleId']}/photo", headers=key_headers()
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.headers["content-type"] == "image/jpeg"
    status, _ = edge.click(stack, "demo-ada", first["article"]["articleId"], position=1, query="black trousers")
    assert status == 200
