"""Readiness checks of each component: one attempt each, raising on failure."""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

if TYPE_CHECKING:
    import redis


class StillStarting(Exception):
    """Not ready, but visibly on its way (a Redis loading its data): the launcher keeps waiting."""


def port_in_use(host: str, port: int) -> bool:
    """True when a server could not bind host:port (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def redis_ping(host: str, port: int, password: str | None = None) -> None:
    import redis

    client = redis.Redis(host=host, port=port, password=password, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.BusyLoadingError as error:
        # Replaying a long append-only file takes as long as it takes (35 MB of clicks: ~30 s here).
        raise StillStarting(f"loading its data, {_loaded_percent(client)}") from error
    finally:
        client.close()


def _loaded_percent(client: redis.Redis) -> str:
    try:
        return f"{float(client.info('persistence')['loading_loaded_perc']):.0f} % done"
    except Exception:  # noqa: BLE001 (the progress is a courtesy)
        return "progress unknown"


# librdkafka's own log (connection refused while the broker starts) would fill the launcher's output.
def broker_metadata(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient

    AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=2)


def broker_topics(bootstrap: str, names: tuple[str, ...]) -> None:
    """The broker answers and has every topic named (a restarted memory-only broker has none at first)."""
    from confluent_kafka.admin import AdminClient

    existing = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=2).topics
    missing = [name for name in names if name not in existing]
    if missing:
        raise RuntimeError(f"topics not created yet: {', '.join(missing)}")


def grpc_serving(address: str, service: str = "", metadata: tuple[tuple[str, str], ...] = ()) -> None:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=1, metadata=metadata
        )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        raise RuntimeError(f"{service or 'server'} is {status}")


def stream_worker_ready(web_url: str) -> None:
    """A stream worker's web server says it has joined its consumer group (services.stream.health)."""
    http_ok(f"{web_url}/ready/")


def stream_lag(web_url: str) -> dict[str, int]:
    """A stream worker's consumer lag by topic, read from its Prometheus metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    from services.stream.lag import CONSUMER_LAG

    lags: dict[str, int] = {}
    for family in text_string_to_metric_families(http_ok(f"{web_url}/metrics")):
        if family.name == CONSUMER_LAG:
            for sample in family.samples:
                lags[sample.labels["topic"]] = int(sample.value)
    return lags


def http_ok(url: str) -> str:
    with urllib.request.urlopen(url, timeout=1) as response:
        return response.read().decode()


def envoy_ready(admin_url: str, clusters: tuple[str, ...]) -> None:
    """Envoy is LIVE and every upstream cluster has a healthy host."""
    if http_ok(f"{admin_url}/ready").strip() != "LIVE":
        raise RuntimeError("envoy is not LIVE")
    status = json.loads(http_ok(f"{admin_url}/clusters?format=json"))
    for cluster in status.get("cluster_statuses", []):
        if cluster["name"] not in clusters:
            continue
        hosts = cluster.get("host_statuses", [])
        if not any(
            host.get("health_status", {}).get("eds_health_status") == "HEALTHY"
            and not host["health_status"].get("failed_active_health_check")
            for host in hosts
        ):
            raise RuntimeError(f"envoy sees no healthy host in cluster {cluster['name']}")


def milvus_ready(host: str, port: int) -> None:
    """Milvus answers, and every collection is loaded and searchable (after a restart it reloads them)."""
    from pymilvus import MilvusClient

    from atelier.stack.milvus_runner import wait_ready

    wait_ready(host, port, timeout_s=2)
    client = MilvusClient(uri=f"http://{host}:{port}", timeout=2)
    try:
        for name in client.list_collections():
            state = client.get_load_state(name)["state"]
            if state.name != "Loaded":
                raise RuntimeError(f"collection {name} is {state.name}")
            vector = next(f for f in client.describe_collection(name)["fields"] if f.get("params", {}).get("dim"))
            client.search(name, data=[[0.0] * int(vector["params"]["dim"])], anns_field=vector["name"], limit=1)
    finally:
        client.close()


def triton_ready(host: str, grpc_port: int, models: list[str]) -> None:
    from atelier.stack.triton import wait_ready

    wait_ready(host, grpc_port, timeout_s=2, models=models)
