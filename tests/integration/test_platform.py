"""The local platform: every real component up, reachable through Envoy, and gone after down."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest
import redis
import tritonclient.grpc as triton
from confluent_kafka.admin import AdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from pymilvus import MilvusClient

from atelier.edge.client import edge_channel, key_headers
from atelier.serving.topics import Topics
from atelier.stack import procfs
from atelier.stack.launcher import Stack
from atelier.stack.readiness import port_in_use


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=key_headers()), timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        assert error.headers["content-type"] == "application/json"
        return error.code, json.loads(error.read())


def test_envoy_admin_is_ready_and_exports_prometheus_stats(stack: Stack) -> None:
    admin = f"http://{stack.endpoints.address(stack.endpoints.envoy_admin_port)}"
    with urllib.request.urlopen(f"{admin}/ready", timeout=5) as response:
        assert response.read().decode().strip() == "LIVE"
    with urllib.request.urlopen(f"{admin}/stats/prometheus", timeout=5) as response:
        assert "envoy_cluster_upstream_rq" in response.read().decode()


@pytest.mark.parametrize(
    ("routed_to", "service"),
    [
        (None, "fashion.v1.SearchService"),
        ("ranker", "fashion.v1.RankerService"),
        ("features", "fashion.v1.FeaturesService"),
        ("features", "fashion.v1.EventsService"),
    ],
)
def test_each_service_is_serving_through_envoy(stack: Stack, routed_to: str | None, service: str) -> None:
    metadata = (("atelier-service", routed_to),) if routed_to else ()
    with grpc.insecure_channel(stack.endpoints.address(stack.endpoints.envoy_port)) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5, metadata=metadata
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_stream_worker_is_up(stack: Stack) -> None:
    url = f"http://{stack.endpoints.address(stack.endpoints.stream_web_port)}/"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200


def test_triton_is_ready(stack: Stack) -> None:
    client = triton.InferenceServerClient(stack.endpoints.address(stack.endpoints.triton_grpc_port))
    assert client.is_server_live() and client.is_server_ready()


def test_milvus_answers(stack: Stack) -> None:
    client = MilvusClient(uri=f"http://{stack.endpoints.address(stack.endpoints.milvus_port)}", timeout=10)
    try:
        assert isinstance(client.list_collections(), list)
    finally:
        client.close()


def test_redis_answers(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.endpoints.redis_url, socket_timeout=5)
    assert client.ping()
    client.close()


def test_broker_has_every_topic(stack: Stack) -> None:
    metadata = AdminClient({"bootstrap.servers": stack.endpoints.broker_bootstrap}).list_topics(timeout=10)
    topics = Topics.from_env()
    for name in topics.all():
        assert name in metadata.topics
        assert len(metadata.topics[name].partitions) == topics.partitions


def test_reflection_lists_the_public_services_through_envoy(stack: Stack) -> None:
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"fashion.v1.SearchService", "fashion.v1.FeaturesService", "fashion.v1.EventsService"} <= services


def test_unknown_rest_path_is_404_with_a_json_status(stack: Stack) -> None:
    status, body = _get(f"http://{stack.endpoints.address(stack.endpoints.envoy_port)}/v1/nothing-here")
    assert status == 404
    assert body["code"] == grpc.StatusCode.NOT_FOUND.value[0]


def test_unknown_query_parameter_is_400_naming_it(stack: Stack) -> None:
    edge = f"http://{stack.endpoints.address(stack.endpoints.envoy_port)}"
    status, body = _get(f"{edge}/v1/search?query=jeans&colour_of_the_day=red")
    assert status == 400
    assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "colour_of_the_day" in body["message"]


def test_internal_rpcs_are_not_routed_at_the_edge(stack: Stack) -> None:
    from fashion.v1 import features_service_pb2, features_service_pb2_grpc

    with grpc.insecure_channel(stack.endpoints.address(stack.endpoints.envoy_port)) as channel:
        stub = features_service_pb2_grpc.FeaturesServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.BatchGetItemSignals(features_service_pb2.BatchGetItemSignalsRequest(article_ids=["1"]), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.last
def test_down_leaves_no_process_and_no_listening_port(stack: Stack) -> None:
    supervisor_pid = stack.supervisor.pid()
    assert supervisor_pid is not None
    processes = procfs.descendants([supervisor_pid])
    assert len(processes) > len(stack.components())
    stack.down()
    assert [pid for pid in processes if procfs.alive(pid)] == []
    ports = [(c.name, port) for c in stack.components() for port in c.ports]
    assert [(name, port) for name, port in ports if port_in_use(stack.endpoints.host, port)] == []
