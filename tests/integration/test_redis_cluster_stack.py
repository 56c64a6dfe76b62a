"""The local stack on a Valkey cluster, as a user runs it: `ATELIER_REDIS_CLUSTER_PRIMARIES=3 atelier up`, a
catalogue loaded, searches and clicks through Envoy; the primary of a shopper's slot stopped (SIGSTOP: a
SIGKILL is restarted by supervisord before the cluster notices) until its replica is promoted, and the
shopper's next click still reaches the next search; `atelier down` leaves nothing behind.

A second stack beside the session's, on ports of its own (the session's offset + 2000), its state in a
temporary folder; search and the ranker without models' extras (no reranker, no CLIP)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier.serving.feature_store import keys
from atelier.serving.settings import ROOT
from atelier.stack import readiness
from atelier.stack.launcher import Stack
from atelier.stack.redis_cluster import cluster_nodes, key_owner, local_cluster
from tests.integration.conftest import BELOW_EPHEMERAL, TEST_PORT_OFFSET
from tests.integration.support import edge
from tests.integration.test_stream_workers import wait_for

PRIMARIES = 3
OFFSET = TEST_PORT_OFFSET + 2000
PROMOTED_WITHIN_S = 30


def _atelier(*args: str, timeout_s: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "atelier.cli", *args],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state: Path = tmp_path_factory.mktemp("cluster-stack")
    environment = {
        "ATELIER_REDIS_CLUSTER_PRIMARIES": str(PRIMARIES),
        "ATELIER_PORT_OFFSET": str(OFFSET),
        **{
            f"ATELIER_{service}_PORT": str(default - BELOW_EPHEMERAL + OFFSET)
            for service, default in (("SEARCH", 50051), ("RANKER", 50052), ("FEATURES", 50053))
        },
        "ATELIER_STATE_DIR": str(state),
        "ATELIER_MODEL_REPOSITORY": str(state / "model-repository"),
        "ATELIER_RERANK_MODEL_DIR": str(state / "no-reranker"),
        "ATELIER_CLIP_MODEL_DIR": str(state / "no-clip"),
        "ATELIER_FIRST_RUN_TRAINING": "0",
        "ATELIER_PROMETHEUS_ENABLED": "0",
        "SEARCH_RERANK_ENABLED": "0",
        "STREAM_RETRY_DELAYS_S": "1,2,4",  # a click waiting for its replica is retried within seconds
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("ATELIER_", "SEARCH_", "STREAM_", "FEATURES_"))]:
            patch.delenv(name)
        for name, value in environment.items():
            patch.setenv(name, value)
        stack = Stack.from_env(say=lambda line: print(line, flush=True))
        try:
            _atelier("up")
            _atelier("catalog", "load", "--synthetic", "--articles", "200")
            yield stack
        finally:
            stack.down(quiet=True)


def _recent(stack: Stack, user: str) -> list[str]:
    status, body = edge.call(stack, "GET", f"/v1/users/{user}/features")
    assert status == 200, body
    return [click["articleId"] for click in body.get("userFeatures", {}).get("recentClicks", [])]


def _user_on_the_seed_node(stack: Stack) -> str:
    """A shopper whose features live on node 1, every client's seed address: the hardest primary to lose."""
    while True:
        user = f"cluster-{uuid.uuid4().hex[:8]}"
        if key_owner(stack.endpoints, keys.user_recent(user)).primary == "redis":
            return user


def test_the_stack_runs_on_the_cluster_and_a_click_survives_a_primary_failover(cluster_stack: Stack) -> None:
    stack = cluster_stack
    status_table = _atelier("status")
    for number in range(1, 2 * PRIMARIES + 1):
        assert ("redis" if number == 1 else f"redis-{number}") in status_table
    local_cluster(stack.endpoints, PRIMARIES).check_ready()

    user = _user_on_the_seed_node(stack)
    status, body = edge.search(stack, query="black jeans", k=5, userId=user)
    assert status == 200 and len(body["results"]) == 5, body
    first, last = body["results"][0]["article"]["articleId"], body["results"][-1]["article"]["articleId"]
    assert edge.click(stack, user, last)[0] == 200
    wait_for(lambda: _recent(stack, user) == [last], 30, "the click in the user's features")

    # The primary of the user's slot stops answering; its replica takes over.
    owner = key_owner(stack.endpoints, keys.user_recent(user))
    stack.supervisor.signal(owner.primary, "STOP")
    try:
        wait_for(
            lambda: key_owner(stack.endpoints, keys.user_recent(user)).primary != owner.primary,
            PROMOTED_WITHIN_S,
            "a replica promoted",
        )
        # Accepted at once (the broker holds it); applied once a replica holds its write (STREAM_REPLICA_ACKS=1),
        # so once the old primary, back, has rejoined as the new one's replica.
        assert edge.click(stack, user, first)[0] == 200
    finally:
        stack.supervisor.signal(owner.primary, "CONT")
    wait_for(lambda: _recent(stack, user)[:1] == [first], 60, "the click after the failover")
    wait_for(lambda: local_cluster(stack.endpoints, PRIMARIES).check_ready() or True, 60, "the cluster whole again")
    assert _recent(stack, user) == [first, last]
    status, body = edge.search(stack, query="black jeans", k=5, userId=user)
    assert status == 200 and body["results"][0]["article"]["articleId"] in {first, last}, body

    stack.down(quiet=True)
    ports = [node.port for node in cluster_nodes(stack.endpoints.redis_port, PRIMARIES)]
    time.sleep(0.5)
    assert not [port for port in ports if readiness.port_in_use(stack.endpoints.host, port)]
