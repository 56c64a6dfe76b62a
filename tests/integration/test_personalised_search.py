"""Personalisation end to end: a click moves that article up in the same user's next search."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from atelier.edge.client import key_headers
from atelier.stack.launcher import Stack

QUERY = "black trousers"


def _call(stack: Stack, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        stack.endpoints.edge_url + path, data=data, headers={"content-type": "application/json", **key_headers()}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _search(stack: Stack, user: str) -> list[dict]:
    status, body = _call(stack, "/v1/search?" + urllib.parse.urlencode({"query": QUERY, "k": 30, "userId": user}))
    assert status == 200, body
    assert body["degradations"] == [], body["degradations"]
    return body["results"]


def _ids(results: list[dict]) -> list[str]:
    return [r["article"]["articleId"] for r in results]


def test_a_click_moves_the_article_up_for_that_user_only(catalog: int, stack: Stack) -> None:
    user, other = f"shopper-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    before = _search(stack, user)
    other_before = _search(stack, other)
    assert _ids(before) == _ids(other_before)
    assert all("behaviourScore" not in r for r in before), "no history: unpersonalised"
    clicked = before[24]["article"]["articleId"]

    status, body = _call(
        stack,
        "/v1/events/clicks",
        {"userId": user, "itemId": clicked, "position": 24, "source": "search", "device": "web", "query": QUERY},
    )
    assert status == 200, body
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        after = _search(stack, user)
        if clicked in _ids(after) and _ids(after).index(clicked) < 24:
            break
        time.sleep(0.2)
    after = _search(stack, user)
    moved = next(r for r in after if r["article"]["articleId"] == clicked)
    assert moved["rank"] < 25
    assert moved["behaviourScore"] > 0
    assert moved["score"] > moved["retrievalScore"]
    assert _ids(_search(stack, other)) == _ids(other_before)
