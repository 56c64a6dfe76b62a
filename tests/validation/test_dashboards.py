"""The Grafana dashboards (deploy/grafana/dashboards/) and the rules: every query is valid PromQL (promtool
parses it) and names only metrics the stack really exports:
- our processes' own, from their metric definitions (every module that defines one, the stream workers'
  app registry with Faust's metrics and the lag),
- the recording rules' (deploy/prometheus/rules.yml),
- the servers' (Envoy, Triton, Milvus, the Redis exporter, Prometheus), from a live scrape of the local stack,
  and the Kafka exporter's (compose, k8s), from its documentation: tests/data/exported_metrics.yaml.
Then how they are shipped: compose mounts them where the provisioning looks, k8s' ConfigMap holds each.
"""

from __future__ import annotations

import importlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.registry import Collector

from atelier.serving.settings import ROOT
from atelier.stack import prometheus
from services.stream.lag import LagCollector
from services.stream.metrics import StreamMetrics
from tests.metrics_support import EXTERNAL, metric_names

DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
# Modules that define metrics at import: every one under atelier/ and services/ that uses prometheus_client,
# but the stream workers' apps (their metrics are built per app, below).
SOURCES = ("atelier", "services")
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket{a="b(c)"}[5m])))'
        " / on () group_left () atelier:search_requests:rate5m * 1e6 > bool 0"
    )
    assert metric_names(expr) == {"grpc_server_handling_seconds_bucket", "atelier:search_requests:rate5m"}


def metric_modules() -> Iterator[str]:
    for source in SOURCES:
        for path in sorted((ROOT / source).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if "prometheus_client" in path.read_text() and not module.endswith(("stream.app", "stream.retry.app")):
                yield module


def sample_names(collectors: Iterator[Any]) -> set[str]:
    return {family.name + suffix for family in collectors for suffix in _SUFFIXES[family.type]}


def code_metrics() -> set[str]:
    """Every metric our processes export, from their definitions."""
    for module in metric_modules():
        importlib.import_module(module)
    stream = CollectorRegistry()
    StreamMetrics(stream)
    FaustMetrics.create(stream, "faust")
    lag: Collector = LagCollector(lambda: ((), {}, {}))
    return sample_names(REGISTRY.collect()) | sample_names(stream.collect()) | sample_names(lag.collect())


def recorded_metrics() -> set[str]:
    groups = yaml.safe_load(prometheus.RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Where each metric name comes from -> the names."""
    external = yaml.safe_load(EXTERNAL.read_text())
    return {"our code": code_metrics(), "recording rules": recorded_metrics()} | {
        component: set(names) for component, names in external.items()
    }


def dashboard_queries() -> list[tuple[str, str]]:
    """(dashboard/panel, expr) of every panel target."""
    return [
        (f"{path.stem}/{panel['title']}", target["expr"])
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]


def rule_queries() -> list[tuple[str, str]]:
    groups = yaml.safe_load(prometheus.RULES.read_text())["groups"]
    return [(rule.get("record") or rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def used_metrics() -> set[str]:
    """Every metric name a dashboard or rule reads."""
    return set().union(*(metric_names(expr) for _, expr in dashboard_queries() + rule_queries()))


def test_our_metrics_are_found() -> None:
    found = code_metrics()
    for name in ("grpc_server_handling_seconds_bucket", "search_degraded_total", "circuit_breaker_open"):
        assert name in found
    for name in ("stream_click_to_visible_seconds_bucket", "stream_dead_letters_total", "stream_consumer_lag"):
        assert name in found


def test_every_dashboard_and_rule_names_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    known = set().union(*exported.values())
    unknown = {
        where: sorted(metric_names(expr) - known)
        for where, expr in dashboard_queries() + rule_queries()
        if metric_names(expr) - known
    }
    assert not unknown, f"metrics no component exports: {unknown}"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule."""
    rules = [{"record": f"query_{n}", "expr": expr} for n, (_, expr) in enumerate(dashboard_queries())]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run([prometheus.promtool(), "check", "rules", path], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboards_are_well_formed() -> None:
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    uids = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids.append(dashboard["uid"])
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            assert panel["targets"], (path.name, panel["title"])
            for source in [panel["datasource"], *(target["datasource"] for target in panel["targets"])]:
                assert source == {"type": "prometheus", "uid": datasource["uid"]}, (path.name, panel["title"])
    assert len(uids) == len(set(uids)) == 3


def test_compose_and_k8s_ship_every_dashboard() -> None:
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "atelier.yml").read_text())["providers"]
    grafana = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    component = yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())
    (generator,) = [g for g in component["configMapGenerator"] if g["name"] == "atelier-grafana-dashboards"]
    assert sorted(generator["files"]) == sorted(str(path.relative_to(ROOT / "deploy")) for path in DASHBOARDS)
