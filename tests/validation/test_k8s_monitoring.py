"""What a Prometheus in the `monitoring` namespace needs of k8s/ to scrape it as deploy/prometheus/kubernetes.yml
says, in every kustomization as `kubectl kustomize` renders it: each name the config looks up (DNS type A) is a
headless Service (one address per pod) with the scraped port, over pods that serve it, and the NetworkPolicies let
the monitoring namespace in on that port. And tracing: off by default, turned on by one ConfigMap key that Envoy's
config render step reads too.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from atelier.serving.settings import ROOT, Endpoints, Tracing
from atelier.stack import envoy as envoy_renderer
from tests.k8s_support import KUSTOMIZATIONS, find, of_kind, pod_containers, render
from tests.unit.test_deploy_manifests import selects
from tests.validation.test_k8s import environment, workloads

K8S_CONFIG = ROOT / "deploy" / "prometheus" / "kubernetes.yml"
NAMESPACE = "atelier"
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
# Services an operator makes (not in the manifests): the Milvus operator's <name>-milvus.
OPERATOR_SERVICES = {"atelier-milvus"}


def strimzi_exporter_labels(kafka: dict[str, Any]) -> dict[str, str]:
    """The labels Strimzi (0.47: Labels.generateDefaultLabels) gives the pods of a Kafka's kafkaExporter, the
    Deployment <cluster>-kafka-exporter (KafkaExporterResources.componentName)."""
    cluster = kafka["metadata"]["name"]
    return {
        "strimzi.io/kind": "Kafka",
        "strimzi.io/name": f"{cluster}-kafka-exporter",
        "strimzi.io/cluster": cluster,
        "strimzi.io/component-type": "kafka-exporter",
        "app.kubernetes.io/name": "kafka-exporter",
        "app.kubernetes.io/instance": cluster,
    }


def scrape_targets() -> list[tuple[str, str, int]]:
    """(job, Service, port) of every DNS lookup of the k8s config."""
    targets = []
    for job in yaml.safe_load(K8S_CONFIG.read_text())["scrape_configs"]:
        for lookup in job.get("dns_sd_configs", []):
            assert lookup["type"] == "A", job["job_name"]
            for name in lookup["names"]:
                service, namespace, svc = name.split(".")
                assert (namespace, svc) == (NAMESPACE, "svc"), name
                targets.append((job["job_name"], service, lookup["port"]))
    return targets


def serving_pods(documents: tuple[dict[str, Any], ...], selector: dict[str, str], port: int) -> list[dict[str, str]]:
    """The labels of the pods a Service's selector picks that serve `port`: our workloads', Strimzi's exporter's."""
    pods = []
    for workload in workloads(documents):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if selector.items() <= labels.items():
            declared = {p["containerPort"] for c in pod_containers(workload) for p in c.get("ports", [])}
            assert port in declared, (workload["metadata"]["name"], port)
            pods.append(labels)
    for kafka in of_kind(documents, "Kafka").values():
        labels = strimzi_exporter_labels(kafka)
        if selector.items() <= labels.items():
            assert "kafkaExporter" in kafka["spec"], "the Service selects a Kafka exporter Strimzi does not run"
            assert port == 9404  # Strimzi's MetricsModel.METRICS_PORT, the exporter's --web.listen-address
            pods.append(labels)
    return pods


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_scrape_target_is_a_headless_service_the_monitoring_namespace_reaches(kustomization: str) -> None:
    documents = render(kustomization)
    policies = [policy["spec"] for policy in of_kind(documents, "NetworkPolicy").values()]
    jobs = set()
    for job, name, port in scrape_targets():
        jobs.add(job)
        if name in OPERATOR_SERVICES:
            continue
        service = find(documents, "Service", name)["spec"]
        # Headless: DNS gives every ready pod's address, so each replica is a target of its own.
        assert service.get("clusterIP") == "None", name
        assert port in {p["port"] for p in service["ports"]}, (name, port)
        pods = serving_pods(documents, service["selector"], port)
        assert pods, f"the Service {name} selects no pod serving {port}"
        for labels in pods:
            opened = {
                p["port"]
                for policy in policies
                if selects(policy["podSelector"], labels)
                for rule in policy.get("ingress", [])
                if MONITORING in rule.get("from", [])
                for p in rule["ports"]
            }
            assert port in opened, f"no NetworkPolicy lets monitoring reach {name}:{port}"
    assert {"redis", "kafka", "stream", "stream-retry", "envoy", "edge-auth"} <= jobs


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_redis_exporter_reads_the_password_every_client_reads(kustomization: str) -> None:
    (exporter,) = [
        c for c in pod_containers(find(render(kustomization), "StatefulSet", "redis")) if c["name"] == "redis-exporter"
    ]
    assert exporter["args"] == [f"-redis.addr=redis://127.0.0.1:{Endpoints.from_env({}).redis_port}"]
    (password,) = exporter["env"]
    assert password == {
        "name": "REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}},
    }


def envoy_tracing(kustomization: str, overrides: dict[str, str]) -> dict[str, Any]:
    """The tracing Envoy's render-config init container configures, from its environment with `overrides`."""
    documents = render(kustomization)
    (init,) = [c for c in pod_containers(find(documents, "Deployment", "envoy")) if c["name"] == "render-config"]
    tracing = Tracing.from_env(environment(init, documents) | overrides)
    config = yaml.safe_load(envoy_renderer.render_config(Endpoints.from_env({}), tracing=tracing))
    (otlp,) = [c for c in config["static_resources"]["clusters"] if c["name"] == "otlp"]
    (endpoint,) = otlp["load_assignment"]["endpoints"][0]["lb_endpoints"]
    managers = [
        f["typed_config"]
        for listener in config["static_resources"]["listeners"]
        for chain in listener["filter_chains"]
        for f in chain["filters"]
        if "tracing" in f.get("typed_config", {})
    ]
    return {
        "exporter": tracing.traces_exporter,
        "collector": endpoint["endpoint"]["address"]["socket_address"],
        "sampling": {m["tracing"].get("random_sampling", {}).get("value") for m in managers},
    }


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_tracing_is_off_by_default_and_one_key_turns_it_on_for_envoy_too(kustomization: str) -> None:
    configmap = find(render(kustomization), "ConfigMap", "atelier-env")["data"]
    assert configmap["OTEL_TRACES_EXPORTER"] == "none"
    off = envoy_tracing(kustomization, {})
    assert off["exporter"] == "none" and off["sampling"] == {0}
    on = envoy_tracing(kustomization, {"OTEL_TRACES_EXPORTER": "otlp"})
    assert on["exporter"] == "otlp" and on["sampling"] == {100}
    host, port = Tracing.from_env(configmap).otlp_host_port
    assert on["collector"] == {"address": host, "port_value": port}
    assert host.endswith(".svc.cluster.local") and port == 4317
