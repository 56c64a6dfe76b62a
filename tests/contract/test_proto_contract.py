"""The protobuf contract: lint-clean, and every public RPC reachable over REST."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from atelier.stack.codegen import DESCRIPTOR_SET, ROOT

# RPCs meant for other services only; the edge gives them no route.
INTERNAL_RPCS = {
    "fashion.v1.RankerService.Rank",
    "fashion.v1.FeaturesService.BatchGetItemSignals",
}


def _fashion_methods() -> dict[str, descriptor_pb2.MethodDescriptorProto]:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    methods = {}
    for proto in files.file:
        if proto.package != "fashion.v1":
            continue
        for service in proto.service:
            for method in service.method:
                methods[f"fashion.v1.{service.name}.{method.name}"] = method
    return methods


def test_buf_lint_passes() -> None:
    buf = Path(os.environ.get("BUF", ROOT / "build/tools/node_modules/.bin/buf"))
    if not buf.exists():
        pytest.fail(f"buf CLI not found at {buf}; `make test` installs it")
    result = subprocess.run([str(buf), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_rpc_has_an_http_rule() -> None:
    methods = _fashion_methods()
    assert INTERNAL_RPCS <= methods.keys()
    missing = [
        name
        for name, m in methods.items()
        if name not in INTERNAL_RPCS and not m.options.HasExtension(annotations_pb2.http)
    ]
    assert missing == []


def test_internal_rpcs_have_no_http_rule() -> None:
    methods = _fashion_methods()
    exposed = [name for name in INTERNAL_RPCS if methods[name].options.HasExtension(annotations_pb2.http)]
    assert exposed == []


def test_rest_routes_match_the_contract() -> None:
    routes = {}
    for name, method in _fashion_methods().items():
        if not method.options.HasExtension(annotations_pb2.http):
            continue
        rule = method.options.Extensions[annotations_pb2.http]
        for binding in [rule, *rule.additional_bindings]:
            verb = binding.WhichOneof("pattern")
            routes[(verb.upper(), getattr(binding, verb))] = name.removeprefix("fashion.v1.")
    assert routes == {
        ("GET", "/v1/search"): "SearchService.SearchText",
        ("POST", "/v1/search"): "SearchService.SearchText",
        ("POST", "/v1/search:image"): "SearchService.SearchImage",
        ("POST", "/v1/search:hybrid"): "SearchService.SearchHybrid",
        ("GET", "/v1/articles/{article_id}/photo"): "SearchService.GetArticlePhoto",
        ("GET", "/v1/users/{user_id}/features"): "FeaturesService.GetUserFeatures",
        ("GET", "/v1/popular"): "FeaturesService.ListPopularItems",
        ("POST", "/v1/events/clicks"): "EventsService.RecordClick",
    }
