"""Regenerates tests/data/crds/: the schemas of the custom resources k8s/ uses, from the pinned releases.

    .venv/bin/python tests/data/make_crd_schemas.py                  # from GitHub
    .venv/bin/python tests/data/make_crd_schemas.py --git strimzi/strimzi-kafka-operator=/path/to/clone ...

Each operator's version is pinned once, in k8s/operators/ (SOURCES names the same releases, and
tests/validation/test_k8s.py checks that they agree). CI validates offline, so only what it needs is
kept: each kind's openAPIV3Schema (of the version k8s/ uses) less its descriptions, and Strimzi's list of
the Kafka versions it supports (kafka-versions.yaml). One JSON file per release, named after it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent / "crds"
# Per release: its repository, tag, and the files (in the repository at that tag) read.
SOURCES: dict[str, dict[str, Any]] = {
    "strimzi-0.47.0": {
        "repo": "strimzi/strimzi-kafka-operator",
        "tag": "0.47.0",
        "crds": {
            "Kafka": ("packaging/install/cluster-operator/040-Crd-kafka.yaml", "v1beta2"),
            "KafkaTopic": ("packaging/install/cluster-operator/043-Crd-kafkatopic.yaml", "v1beta2"),
            "KafkaNodePool": ("packaging/install/cluster-operator/045-Crd-kafkanodepool.yaml", "v1beta2"),
        },
        "kafka_versions": "kafka-versions.yaml",
    },
    "milvus-operator-v1.3.8": {
        "repo": "zilliztech/milvus-operator",
        "tag": "v1.3.8",
        "crds": {"Milvus": ("config/crd/bases/milvus.io_milvuses.yaml", "v1beta1")},
    },
    "gateway-api-v1.4.1": {
        "repo": "kubernetes-sigs/gateway-api",
        "tag": "v1.4.1",
        "crds": {
            "Gateway": ("config/crd/standard/gateway.networking.k8s.io_gateways.yaml", "v1"),
            "HTTPRoute": ("config/crd/standard/gateway.networking.k8s.io_httproutes.yaml", "v1"),
        },
    },
}


def without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: without_descriptions(value) for key, value in node.items() if key != "description"}
    if isinstance(node, list):
        return [without_descriptions(item) for item in node]
    return node


def reader(clones: dict[str, Path]) -> Any:
    def read(repo: str, tag: str, path: str) -> str:
        if repo in clones:
            return subprocess.run(
                ["git", "-C", str(clones[repo]), "show", f"{tag}:{path}"], capture_output=True, text=True, check=True
            ).stdout
        url = f"https://raw.githubusercontent.com/{repo}/{tag}/{path}"
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read().decode()

    return read


def release_schemas(release: dict[str, Any], read: Any) -> dict[str, Any]:
    repo, tag = release["repo"], release["tag"]
    kinds = {}
    for kind, (path, version) in release["crds"].items():
        crd = yaml.safe_load(read(repo, tag, path))
        assert crd["spec"]["names"]["kind"] == kind, path
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
        kinds[kind] = {
            "apiVersion": f"{crd['spec']['group']}/{version}",
            "source": f"https://github.com/{repo}/blob/{tag}/{path}",
            "openAPIV3Schema": without_descriptions(served["schema"]["openAPIV3Schema"]),
        }
    document: dict[str, Any] = {"repository": f"https://github.com/{repo}", "tag": tag, "kinds": kinds}
    if "kafka_versions" in release:
        versions = yaml.safe_load(read(repo, tag, release["kafka_versions"]))
        document["supportedKafkaVersions"] = [v["version"] for v in versions if v.get("supported")]
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git", action="append", default=[], help="owner/name=PATH: read that repository's clone")
    args = parser.parse_args()
    clones = {repo: Path(path) for repo, _, path in (entry.partition("=") for entry in args.git)}
    read = reader(clones)
    OUT.mkdir(exist_ok=True)
    for stale in set(OUT.glob("*.json")) - {OUT / f"{name}.json" for name in SOURCES}:
        stale.unlink()
    for name, release in SOURCES.items():
        text = json.dumps(release_schemas(release, read), sort_keys=True, separators=(",", ":"))
        (OUT / f"{name}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
