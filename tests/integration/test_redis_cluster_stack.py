"""The local stack on a Valkey cluster, as a user runs it: `ATELIER_REDIS_CLUSTER_PRIMARIES=3 atelier up`, a
catalogue loaded, searches and clicks through Envoy; the primary of a shopper's slot stopped (SIGSTOP: a
SIGKILL is restarted by supervisord before the cluster notices) until its replica is promoted, and the
shopper's next click still reaches the next search; `atelier down` leaves nothing behind.

A second stack beside the session's (tests/integration/support/side_stack.py), on the session's offset + 2000."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from atelier.serving.feature_store import keys
from atelier.stack import readiness
from atelier.stack.launcher import Stack
from atelier.stack.redis_cluster import cluster_nodes, key_owner, local_cluster
from tests.integration.support import edge
from tests.integration.support.side_stack import atelier, side_stack
from tests.integration.test_stream_workers import wait_for

PRIMARIES = 3
PROMOTED_WITHIN_S = 30


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    environment = {
        "ATELIER_REDIS_CLUSTER_PRIMARIES": str(PRIMARIES),
        "STREAM_RETRY_DELAYS_S": "1,2,4",  # a click waiting for its replica is retried within seconds
    }
    with side_stack(tmp_path_factory.mktemp("cluster-stack"), 2000, environment) as stack:
        yield stack


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
    status_table = atelier("status")
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
