"""Reading gRPC errors in tests, and grpcurl."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2


def field_violations(error: grpc.RpcError) -> list[str]:
    """The fields a google.rpc.BadRequest in the error's status details names; [] without details."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            bad_request = error_details_pb2.BadRequest()
            assert status_pb2.Status.FromString(value).details[0].Unpack(bad_request)
            return [v.field for v in bad_request.field_violations]
    return []


def raw_method(channel: grpc.Channel | grpc.aio.Channel, method: str):
    """A unary method that sends and returns bytes as they are: for malformed messages."""
    return channel.unary_unary(method, request_serializer=lambda data: data, response_deserializer=lambda data: data)


def grpcurl(address: str, *args: str, headers: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`grpcurl -plaintext [-H "name: value"]... address args...` (the dev dependency's, beside Python)."""
    options = [f"-H={name}: {value}" for name, value in (headers or {}).items()]
    command = [str(Path(sys.executable).parent / "grpcurl"), "-plaintext", *options, address, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


# What reflection at the edge describes (atelier.edge.public_api): a symbol of each kind, with the kind
# grpcurl names; and what it hides (not routed by Envoy).
EDGE_SYMBOLS = {
    "fashion.v1.SearchService": "a service",
    "fashion.v1.SearchService.SearchText": "a method",
    "fashion.v1.FeaturesService.ListPopularItems": "a method",
    "fashion.v1.SearchTextRequest": "a message",
    "fashion.v1.SearchTextRequest.query": "a field",
    "fashion.v1.DegradationReason": "an enum",
    "fashion.v1.DegradationReason.DEGRADATION_REASON_CACHE_MISS": "an enum value",
    "grpc.health.v1.Health.Check": "a method",
}
EDGE_HIDDEN = [
    "fashion.v1.RankerService",
    "fashion.v1.RankerService.Rank",
    "fashion.v1.FeaturesService.BatchGetItemSignals",
]
EDGE_SERVICES = [
    "fashion.v1.EventsService",
    "fashion.v1.FeaturesService",
    "fashion.v1.SearchService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
]
