"""The authorization service Envoy's ext_authz filter (HTTP mode) asks about every request at the
edge: `python -m atelier.edge.authz`.

Envoy sends each request's method, path, `x-api-key` header and, for a gRPC caller, `x-atelier-grpc: 1`
to CHECK_PREFIX + path. The answer:
- 200 with `x-atelier-key-name: NAME` when the key is known and within its rate limit (Envoy logs
  the name and passes it upstream);
- 401 with a google.rpc.Status JSON body (code 16, UNAUTHENTICATED) when the key is missing or wrong;
- 429 with `retry-after` and a Status body (code 8, RESOURCE_EXHAUSTED) when it is over its limit.
Envoy forwards a denial to the client as it is. Keys come from the key file (atelier.edge.keys),
re-read when it changes; per key-name counters are on the metrics port (Prometheus).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from prometheus_client import Counter, start_http_server

from atelier.edge.keys import KeyFile
from atelier.edge.ratelimit import TokenBuckets, retry_after
from atelier.edge.settings import API_KEY_HEADER, KEY_NAME_HEADER, EdgeAuthSettings, RateLimitSettings
from atelier.serving.logs import configure_logging

log = logging.getLogger(__name__)

CHECK_PREFIX = "/check"
# Set by Envoy (its Lua filter) on a gRPC caller's check. Never the caller's own content-type: with
# `application/grpc` on the check request, Envoy's own error reply to it (this service down) would
# be a gRPC-style 200, which ext_authz would take for an OK.
GRPC_CALLER_HEADER = "x-atelier-grpc"
UNAUTHENTICATED, RESOURCE_EXHAUSTED = 16, 8
REQUESTS = Counter("atelier_edge_requests", "Requests let through at the edge, per API key name", ["key"])
DENIALS = Counter(
    "atelier_edge_denials", "Requests refused at the edge, per API key name and reason", ["key", "reason"]
)


def status_response(
    request: web.Request, http_status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A denial, as the caller expects errors: a REST client the google.rpc.Status JSON body the
    edge's other errors have; a gRPC client `code` as its status (Envoy would otherwise map the HTTP
    status: 429 to UNAVAILABLE) and `message` as its message."""
    if request.headers.get(GRPC_CALLER_HEADER) == "1":
        headers = {"grpc-status": str(code), **(headers or {})}
        return web.Response(status=http_status, text=message, content_type="application/grpc", headers=headers)
    body = json.dumps({"code": code, "message": message, "details": []})
    return web.Response(status=http_status, text=body, content_type="application/json", headers=headers)


class Authorizer:
    def __init__(self, keys: KeyFile, default_rate: RateLimitSettings, buckets: TokenBuckets | None = None) -> None:
        self._keys = keys
        self._default = default_rate
        self._buckets = buckets or TokenBuckets()

    async def check(self, request: web.Request) -> web.Response:
        given = request.headers.get(API_KEY_HEADER, "").strip()
        if not given:
            DENIALS.labels(key="", reason="missing").inc()
            return status_response(
                request, 401, UNAUTHENTICATED, f"missing API key: send it in the {API_KEY_HEADER} header"
            )
        key = self._keys.lookup(given)
        if key is None:
            DENIALS.labels(key="", reason="unknown").inc()
            return status_response(request, 401, UNAUTHENTICATED, "unknown or revoked API key")
        rate = key.rate_per_s or self._default.rate_per_s
        burst = key.burst or self._default.burst
        wait_s = self._buckets.take(key.name, rate, burst)
        if wait_s > 0:
            DENIALS.labels(key=key.name, reason="rate_limited").inc()
            after = retry_after(wait_s)
            return status_response(
                request,
                429,
                RESOURCE_EXHAUSTED,
                f"rate limit of API key {key.name!r} exceeded ({rate:g} requests/s, burst {burst}): "
                f"retry after {after}s",
                {"retry-after": after, KEY_NAME_HEADER: key.name},
            )
        REQUESTS.labels(key=key.name).inc()
        return web.Response(status=200, headers={KEY_NAME_HEADER: key.name})

    async def ready(self, request: web.Request) -> web.Response:
        self._keys.keys()  # raises (500) when the key file cannot be read
        return web.Response(text="ok")


def build_app(authorizer: Authorizer) -> web.Application:
    app = web.Application()
    app.router.add_get("/ready", authorizer.ready)
    app.router.add_route("*", CHECK_PREFIX + "/{path:.*}", authorizer.check)
    return app


def main() -> None:
    settings = EdgeAuthSettings.from_env()
    configure_logging("edge-auth")
    endpoints = settings.endpoints
    keys = KeyFile(settings.keys.path())
    keys.lookup("")  # load (and log) the key file before the first request
    start_http_server(endpoints.edge_auth_metrics_port, addr=endpoints.listen_host)
    log.info("serving", extra={"port": endpoints.edge_auth_port, "key_file": str(keys.path)})
    web.run_app(
        build_app(Authorizer(keys, settings.rate)),
        host=endpoints.listen_host,
        port=endpoints.edge_auth_port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
