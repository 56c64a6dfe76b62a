"""The edge lets in only callers with a key, within their rate, with bodies and headers in bounds;
health checks stay open and reflection describes only what is routed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from atelier.edge.client import edge_channel, key_headers
from atelier.edge.settings import EnvoyLimits
from atelier.stack.launcher import Stack
from benchmarks.edge_limits import post_declared, trickle
from fashion.v1 import features_service_pb2, features_service_pb2_grpc
from tests.grpc_support import EDGE_HIDDEN, EDGE_SERVICES, EDGE_SYMBOLS, grpcurl

POPULAR = "/v1/popular?k=1"


def _get(stack: Stack, path: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple:
    """(status, JSON body, response headers) of a request through Envoy."""
    request = urllib.request.Request(stack.endpoints.edge_url + path, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        with error:
            assert error.headers["content-type"].startswith("application/json")
            return error.code, json.loads(error.read()), error.headers


def _keys(*args: str) -> str:
    """`atelier keys ...` (the test stack's state folder is in the environment); its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "atelier.cli", "keys", *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _features(stack: Stack, metadata: tuple[tuple[str, str], ...]) -> grpc.RpcError | None:
    with grpc.insecure_channel(stack.endpoints.edge_grpc_address) as channel:
        try:
            features_service_pb2_grpc.FeaturesServiceStub(channel).ListPopularItems(
                features_service_pb2.ListPopularItemsRequest(k=1), timeout=10, metadata=metadata
            )
        except grpc.RpcError as error:
            return error
    return None


def test_no_key_or_a_wrong_one_is_401_with_a_json_status(stack: Stack) -> None:
    for headers in ({}, {"x-api-key": "atk_not-a-key"}):
        status, body, _ = _get(stack, POPULAR, headers)
        assert status == 401
        assert body["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0] and body["details"] == []
    status, _, _ = _get(stack, POPULAR, key_headers())
    assert status == 200


def test_grpc_without_a_key_is_unauthenticated(stack: Stack) -> None:
    for metadata in ((), (("x-api-key", "atk_not-a-key"),)):
        error = _features(stack, metadata)
        assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _features(stack, (("x-api-key", key_headers()["x-api-key"]),)) is None


def test_health_checks_are_open(stack: Stack) -> None:
    with grpc.insecure_channel(stack.endpoints.edge_grpc_address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="fashion.v1.SearchService"), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_key_works_once_created_and_stops_once_revoked_without_restarts(stack: Stack) -> None:
    key = _keys("create", "it-new-key")
    try:
        assert _get(stack, POPULAR, {"x-api-key": key})[0] == 200
        assert "it-new-key" in _keys("list")
    finally:
        _keys("revoke", "it-new-key")
    status, body, _ = _get(stack, POPULAR, {"x-api-key": key})
    assert status == 401 and body["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_the_key_name_is_in_the_access_log_and_the_metrics(stack: Stack) -> None:
    assert _get(stack, POPULAR + "&window=POPULARITY_WINDOW_DAY", key_headers())[0] == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in stack.log_file("envoy").read_text().splitlines() if line.startswith("{")]
        if any(line.get("key") == "dev" and "POPULARITY_WINDOW_DAY" in (line.get("path") or "") for line in lines):
            break
        time.sleep(0.5)
    else:
        pytest.fail("no access log line names the key `dev`")
    metrics = f"http://{stack.endpoints.address(stack.endpoints.edge_auth_metrics_port)}/metrics"
    with urllib.request.urlopen(metrics, timeout=5) as response:
        text = response.read().decode()
    assert 'atelier_edge_requests_total{key="dev"}' in text
    assert 'atelier_edge_denials_total{key="",reason="missing"}' in text


def test_a_key_over_its_rate_is_429_with_retry_after(stack: Stack) -> None:
    key = _keys("create", "it-slow-key", "--rate", "0.01", "--burst", "2")
    try:
        statuses = [_get(stack, POPULAR, {"x-api-key": key}) for _ in range(3)]
        assert [status for status, _, _ in statuses] == [200, 200, 429]
        _, body, headers = statuses[-1]
        assert body["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] and "it-slow-key" in body["message"]
        assert int(headers["retry-after"]) >= 1
        error = _features(stack, (("x-api-key", key),))
        assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry-after" in dict(error.trailing_metadata() or error.initial_metadata() or ())
    finally:
        _keys("revoke", "it-slow-key")
    # other keys are unaffected
    assert _get(stack, POPULAR, key_headers())[0] == 200


def test_a_body_over_the_limit_is_413(stack: Stack) -> None:
    limit = EnvoyLimits.from_env().max_request_bytes
    size = limit + 1024 * 1024
    status, answer, _ = post_declared(stack.endpoints.host, stack.endpoints.envoy_port, size, key_headers())
    body = json.loads(answer)
    assert status == 413
    assert body["code"] and body["message"] and body["details"] == []


def test_a_client_trickling_headers_is_cut_off(stack: Stack) -> None:
    limit_s = EnvoyLimits.from_env().request_headers_timeout_s
    assert limit_s <= 30
    elapsed, answer = trickle(stack.endpoints.host, stack.endpoints.envoy_port, give_up_s=40)
    assert elapsed < 30, f"still connected after {elapsed:.0f}s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


def test_reflection_needs_a_key_and_describes_only_what_is_routed(stack: Stack) -> None:
    with grpc.insecure_channel(stack.endpoints.edge_grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            ProtoReflectionDescriptorDatabase(channel).get_services()
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"fashion.v1.SearchService", "fashion.v1.FeaturesService", "fashion.v1.EventsService"} <= services
        assert "fashion.v1.RankerService" not in services
        features = database.FindFileContainingSymbol("fashion.v1.FeaturesService")
        (service,) = [s for s in features.service if s.name == "FeaturesService"]
        assert [m.name for m in service.method] == ["GetUserFeatures", "ListPopularItems"]
        with pytest.raises(KeyError):
            database.FindFileContainingSymbol("fashion.v1.RankerService")


def test_grpcurl_through_the_edge_resolves_every_public_symbol_and_nothing_hidden(stack: Stack) -> None:
    address = stack.endpoints.edge_grpc_address
    refused = grpcurl(address, "list")
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr, refused.stderr
    listed = grpcurl(address, "list", headers=key_headers())
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == EDGE_SERVICES
    methods = grpcurl(address, "list", "fashion.v1.FeaturesService", headers=key_headers())
    assert methods.stdout.split() == [
        "fashion.v1.FeaturesService.GetUserFeatures",
        "fashion.v1.FeaturesService.ListPopularItems",
    ]
    for symbol, kind in EDGE_SYMBOLS.items():
        described = grpcurl(address, "describe", symbol, headers=key_headers())
        assert described.returncode == 0, described.stderr
        assert described.stdout.startswith(f"{symbol} is {kind}:"), described.stdout
    for symbol in EDGE_HIDDEN:
        hidden = grpcurl(address, "describe", symbol, headers=key_headers())
        assert hidden.returncode != 0 and f"Symbol not found: {symbol}" in hidden.stderr, hidden.stderr


def test_with_the_authorization_service_down_the_edge_fails_closed(stack: Stack) -> None:
    supervisor = stack.supervisor
    supervisor.stop("edge-auth")
    try:
        status, body, _ = _get(stack, POPULAR, key_headers())
        assert status == 503 and body["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
        error = _features(stack, (("x-api-key", key_headers()["x-api-key"]),))
        assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        supervisor.start("edge-auth")
    deadline = time.monotonic() + 30
    while _get(stack, POPULAR, key_headers())[0] != 200:
        assert time.monotonic() < deadline, "the edge did not let keys in again"
        time.sleep(0.5)
