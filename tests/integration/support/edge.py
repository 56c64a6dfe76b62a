"""REST calls through Envoy, as a client of the public API makes them."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from atelier.edge.client import key_headers
from atelier.stack.launcher import Stack


def call(stack: Stack, method: str, path: str, body: dict | None = None, timeout_s: float = 15.0) -> tuple[int, dict]:
    """(HTTP status, JSON body); an error status is returned, not raised. A body that is not JSON
    raises ValueError, a transport failure or timeout OSError."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        stack.endpoints.edge_url + path,
        data=data,
        method=method,
        headers={"content-type": "application/json", **key_headers()},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def search(stack: Stack, timeout_s: float = 15.0, **params: object) -> tuple[int, dict]:
    """GET /v1/search with the given query parameters (query, k, userId, filter.colours, ...)."""
    return call(stack, "GET", "/v1/search?" + urllib.parse.urlencode(params), timeout_s=timeout_s)


def click(stack: Stack, user: str, item: str, timeout_s: float = 15.0, **extra: object) -> tuple[int, dict]:
    """POST /v1/events/clicks; `extra` sets more ClickEvent fields (eventId, position, ...)."""
    body = {"userId": user, "itemId": item, "position": 3, "source": "search", "device": "web", **extra}
    return call(stack, "POST", "/v1/events/clicks", body, timeout_s=timeout_s)
