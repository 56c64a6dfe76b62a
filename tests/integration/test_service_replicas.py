"""Replicas in the local stack (ATELIER_SEARCH_REPLICAS, ATELIER_RANKER_REPLICAS): Envoy spreads searches over
both search replicas, search spreads its ranking calls over both rankers, and one replica killed (SIGKILL)
under traffic leaves every answer full, the other serving until supervisord has it back.

The module runs the test stack with two search and two ranker replicas, restarting only search, the ranker
and Envoy, and leaves it as it found it."""

from __future__ import annotations

import itertools
import os
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from atelier.stack import readiness
from atelier.stack.launcher import Stack
from atelier.stack.replicas import replicas
from tests.integration.support import edge
from tests.integration.support.traffic import Traffic
from tests.integration.test_chaos import READY_BOUND_S, _await_ready, _recovered

REPLICAS = {"ATELIER_SEARCH_REPLICAS": "2", "ATELIER_RANKER_REPLICAS": "2"}
SEARCHES = 24
WARM_S = 2.0
AFTER_S = 4.0


def _restart(stack: Stack, names: tuple[str, ...], environment: dict[str, str | None]) -> None:
    """Stops `names`, sets `environment` (None: unset), then `atelier up` (which re-reads their config)."""
    for name in names:
        if name in {info["name"] for info in stack.supervisor.all_info()}:
            stack.supervisor.stop(name)
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    stack.up()


@pytest.fixture(scope="module")
def replicated(stack: Stack, catalog: int) -> Iterator[Stack]:
    previous = {name: os.environ.get(name) for name in REPLICAS}
    try:
        _restart(stack, ("envoy", "search", "ranker"), dict(REPLICAS))
        yield stack
    finally:
        # Even when the switch failed: later tests (and the unit tests' view of the launcher) see one replica.
        _restart(stack, ("envoy", "search", "search-2", "ranker", "ranker-2"), previous)


def _started(stack: Stack, metrics_port: int, service: str, method: str) -> float:
    """The replica's grpc_server_started_total for one method."""
    with urllib.request.urlopen(f"http://{stack.endpoints.address(metrics_port)}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "grpc_server_started_total"
        and sample.labels.get("grpc_service") == service
        and sample.labels.get("grpc_method") == method
    )


def _calls(stack: Stack, service: str, method: str) -> list[float]:
    return [
        _started(stack, each.metrics_port, f"fashion.v1.{service.capitalize()}Service", method)
        for each in replicas(stack.endpoints, service, 2)
    ]


def _more(stack: Stack, service: str, method: str, before: list[float]) -> list[float]:
    """Calls each replica of `service` started since `before`."""
    return [after - earlier for after, earlier in zip(_calls(stack, service, method), before, strict=True)]


def test_every_replica_gets_calls(replicated: Stack) -> None:
    searches, ranks = _calls(replicated, "search", "SearchText"), _calls(replicated, "ranker", "Rank")
    for n in range(SEARCHES):
        status, body = edge.search(replicated, query=f"black slim jeans {n}", k=5, userId=f"replicas-{n}")
        assert status == 200, body
    more_searches = _more(replicated, "search", "SearchText", searches)
    more_ranks = _more(replicated, "ranker", "Rank", ranks)
    assert sum(more_searches) == SEARCHES
    assert all(calls > 0 for calls in more_searches), more_searches  # Envoy's round robin
    assert all(calls > 0 for calls in more_ranks), more_ranks  # search's channel, round robin


@pytest.mark.parametrize("killed", ["search-2", "ranker-2"])
def test_a_replica_killed_under_traffic_leaves_every_answer_full(
    replicated: Stack, article_ids: list[str], killed: str
) -> None:
    """Every search answered, none degraded by the killed service (a dependency missing its deadline on the
    two busy cores is load, as in the chaos suite)."""
    service = killed.split("-")[0]
    old_pid = replicated.supervisor.info(killed)["pid"]
    with Traffic(replicated, itertools.cycle(article_ids), searchers=3, clickers=0) as traffic:
        time.sleep(WARM_S)
        since = time.monotonic()
        replicated.supervisor.signal(killed, "KILL")
        _await_ready(replicated, killed, old_pid, since, READY_BOUND_S)  # supervisord starts it again
        time.sleep(AFTER_S)
    answers = traffic.snapshot()
    assert answers
    spoiled = [(a.status, a.error or a.degradations) for a in answers if not _recovered(a, {service})]
    assert not spoiled, spoiled
    readiness.envoy_ready(replicated.endpoints.envoy_admin_url, ("search", "ranker"))
