"""The local stack's Prometheus: every component a target and up, the stream workers' own metrics after a
click, and the servers still exporting the metric names the dashboards and rules use, as the checked list
says (tests/data/exported_metrics.yaml, tests/validation/test_dashboards.py)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable

import yaml

from atelier.stack import prometheus
from atelier.stack.launcher import Stack
from tests.integration.support import edge
from tests.metrics_support import EXTERNAL, exposed_names
from tests.validation.test_dashboards import used_metrics


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _eventually(check: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)


def _exported(url: str) -> set[str]:
    return exposed_names(_get(url))


def _targets(stack: Stack) -> dict[str, str]:
    """job -> health of its targets ("up" only when every one is)."""
    url = f"http://{stack.endpoints.address(stack.endpoints.prometheus_port)}/api/v1/targets"
    targets = json.loads(_get(url))["data"]["activeTargets"]
    health: dict[str, str] = {}
    for target in targets:
        job = target["labels"]["job"]
        health[job] = target["health"] if health.get(job, "up") == "up" else health[job]
    return health


def test_prometheus_scrapes_every_component_and_each_is_up(stack: Stack) -> None:
    expected = set(prometheus.scrape_jobs(stack.endpoints))
    _eventually(lambda: _targets(stack) == dict.fromkeys(expected, "up"), timeout_s=90)


def test_a_click_shows_in_the_stream_workers_metrics(catalog: int, stack: Stack, article_ids: list[str]) -> None:
    status, body = edge.click(stack, f"u-{uuid.uuid4().hex[:8]}", article_ids[0])
    assert status == 200, body
    url = f"http://{stack.endpoints.address(stack.endpoints.stream_web_port)}/metrics"

    def applied() -> bool:
        return "stream_click_to_visible_seconds_count" in _exported(url)

    _eventually(applied, timeout_s=30)
    names = _exported(url)
    assert {"stream_records_applied_total", "stream_batch_seconds_bucket", "stream_consumer_lag"} <= names


def test_the_servers_export_the_names_the_dashboards_use(catalog: int, stack: Stack) -> None:
    edge.search(stack, query="black trousers", k=5)  # Envoy's upstream and Triton's inference metrics
    endpoints = stack.endpoints
    scraped = {
        job: _exported(f"http://{endpoints.address(ports[0])}{path}")
        for job, (ports, path) in prometheus.scrape_jobs(endpoints).items()
    }
    used = used_metrics()
    for component, names in yaml.safe_load(EXTERNAL.read_text()).items():
        if component in scraped:  # the Kafka exporter runs in compose and k8s only; `scrape` is Prometheus'
            missing = used & set(names) - scraped[component]
            assert not missing, (component, sorted(missing))
