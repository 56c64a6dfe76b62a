"""Two primary stream workers in one consumer group (ATELIER_STREAM_WORKERS=2), as real processes
against a real broker (Tansu) and Redis (Valkey): the group shares the click topics' partitions and
every click is applied once, each user's clicks by the one worker that owns the user's partition."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import pytest

from atelier.serving.feature_store import keys
from atelier.stack import readiness
from atelier.stack.stream_workers import StreamWorker
from tests.integration.test_stream_workers import (
    HOST,
    Cluster,
    applied,
    await_workers_ready,
    click,
    cluster,  # noqa: F401 (the fixture: a broker, Redis and the two workers of the default stack)
    free_ports,
    produce,
    start,
    wait_for,
)

USERS = 12
CLICKS_PER_USER = 5  # below the recent list's cap, so its length counts the applies


@pytest.fixture(scope="module")
def two_workers(cluster: Cluster) -> Iterator[Cluster]:  # noqa: F811 (the imported fixture)
    """The cluster with a second primary worker, its port and data folder its own, as the launcher sets them."""
    (port,) = free_ports(1)
    second = StreamWorker("stream-2", port, cluster.state / "stream-2")
    command = [sys.executable, "-m", "services.stream", "worker", "--loglevel", "info"]
    cluster.processes[second.name], cluster.logs[second.name] = start(
        second.name, command, cluster.env | second.environment(), cluster.state
    )
    cluster.web[second.name] = f"http://{HOST}:{port}"
    await_workers_ready(cluster)
    yield cluster


def test_both_workers_get_click_partitions_and_apply_each_click_once(two_workers: Cluster) -> None:
    group = two_workers
    clicks_topic = group.topics.clicks
    # Each primary worker reports a consumer lag for the partitions of the clicks topic it was assigned.
    for name in ("stream", "stream-2"):
        url = group.web[name]
        wait_for(lambda url=url: clicks_topic in readiness.stream_lag(url), 30, f"{name} holds click partitions", group)

    run = uuid.uuid4().hex[:8]
    users = [f"scale-{run}-{index}" for index in range(USERS)]
    clicks = [click(f"{run}-{user}-{n}", user, f"item-{n % 3}") for n in range(CLICKS_PER_USER) for user in users]
    produce(group, [(c.user_id.encode(), c.to_json()) for c in clicks])
    wait_for(lambda: applied(group, clicks) == len(clicks), 30, "all clicks applied", group)
    # Applied exactly once: each user's recent list holds one entry per click (a second apply adds one).
    for user in users:
        assert group.redis.llen(keys.user_recent(user)) == CLICKS_PER_USER, user
    group.assert_running()
