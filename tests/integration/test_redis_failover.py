"""Both stream workers on a real Valkey cluster (3 primaries, a replica each, from the local stack's
valkey-server), fed by a real broker: a primary is killed (SIGKILL) under click traffic and its replica
promoted. Every click the broker acknowledged is applied exactly once, and the user features and
popularity read back are exactly what those clicks make.

The workers run as `ATELIER_REDIS_CLUSTER_PRIMARIES=N atelier up` runs them: the cluster client, and
STREAM_REPLICA_ACKS=1 (a batch counts as applied once a replica holds it), so the failover loses nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from confluent_kafka import Producer

from atelier.serving.click_event import ClickRecord
from atelier.serving.feature_store import FeatureReader, keys
from tests.integration.support import valkey_cluster
from tests.integration.test_stream_workers import (
    CATALOGUE,
    HOST,
    Cluster,
    read_topic,
    stream_group,
    wait_for,
)

USERS = 100
RATE = 120  # clicks a second, from one producer
BEFORE_S, AFTER_S = 2.0, 4.0
PROMOTED_WITHIN_S = 20


@pytest.fixture(scope="module")
def on_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, valkey_cluster.ValkeyCluster]]:
    state: Path = tmp_path_factory.mktemp("redis-failover")
    ports = valkey_cluster.free_ports(6)
    with valkey_cluster.running(state / "valkey", ports, primaries=3) as valkey:
        client = redis.RedisCluster(host=HOST, port=ports[0], decode_responses=True, socket_timeout=5)
        settings = {
            "ATELIER_REDIS_CLUSTER": "1",
            "STREAM_REPLICA_ACKS": "1",
            "STREAM_REPLICA_ACK_TIMEOUT_S": "0.2",
            # Longer retry tiers than the other stream tests': clicks of the promoted primary's slots wait
            # there until the killed node is back as its replica.
            "STREAM_RETRY_DELAYS_S": "1,2,4",
        }
        with stream_group(state, ports[0], client, {}, settings) as group:
            yield group, valkey


class Clicks:
    """Produces clicks of `users` at RATE a second until stopped; keeps those the broker acknowledged."""

    def __init__(self, group: Cluster, users: list[str]) -> None:
        self._group, self._users = group, users
        self.acknowledged: list[ClickRecord] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Clicks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        producer = Producer({"bootstrap.servers": self._group.bootstrap, "enable.idempotence": True, "acks": "all"})
        n = 0
        while not self._stop.is_set():
            user = self._users[n % len(self._users)]
            record = ClickRecord(
                f"fo-{n}-{uuid.uuid4().hex[:6]}",
                user,
                CATALOGUE[n % len(CATALOGUE)],
                0,
                "search",
                "web",
                time.time_ns() // 1_000_000,
            )

            def delivered(error: object, _: object, record: ClickRecord = record) -> None:
                (self.failed if error else self.acknowledged).append(str(error) if error else record)

            producer.produce(
                self._group.topics.clicks, key=user.encode(), value=record.to_json(), on_delivery=delivered
            )
            producer.poll(0)
            n += 1
            time.sleep(1 / RATE)
        producer.flush(10)


def _applied(group: Cluster, clicks: list[ClickRecord]) -> int:
    pipe = group.redis.pipeline(transaction=False)
    for click in clicks:
        pipe.exists(keys.dedupe(click.user_id, click.event_id))
        pipe.exists(keys.article_dedupe(click.item_id, click.user_id, click.event_id))
    return sum(1 for found in zip(*[iter(pipe.execute())] * 2, strict=True) if all(found))


def test_a_primary_killed_under_click_traffic_loses_and_repeats_no_click(
    on_cluster: tuple[Cluster, valkey_cluster.ValkeyCluster],
) -> None:
    group, valkey = on_cluster
    run = uuid.uuid4().hex[:8]
    users = [f"fo-{run}-{i}" for i in range(USERS)]
    # The primary holding the most of these users, not the node every client was first pointed at.
    owners = Counter(valkey.primary_of(keys.user_recent(user)) for user in users)
    victim = next(port for port, _ in owners.most_common() if port != valkey.ports[0])
    victims_user = next(user for user in users if valkey.primary_of(keys.user_recent(user)) == victim)

    with Clicks(group, users) as clicks:
        time.sleep(BEFORE_S)
        valkey.processes[victim].kill()
        valkey.processes[victim].wait()
        killed_at = time.monotonic()
        wait_for(
            lambda: valkey.primary_of(keys.user_recent(victims_user)) != victim, PROMOTED_WITHIN_S, "replica promoted"
        )
        promoted_after_s = time.monotonic() - killed_at
        # As supervisord does in the local stack: the killed node starts again and rejoins as a replica.
        valkey.start_node(victim)
        time.sleep(AFTER_S)
    assert not clicks.failed and clicks.acknowledged
    sent = clicks.acknowledged
    wait_for(lambda: _applied(group, sent) == len(sent), 90, "every acknowledged click applied", group)
    print(f"\n{len(sent)} clicks, primary {victim} killed, replica promoted after {promoted_after_s:.1f}s")

    # Exactly once: each user's recent list holds each of its clicks once (fewer than the list's cap).
    per_user: dict[str, list[ClickRecord]] = {}
    for click in sent:
        per_user.setdefault(click.user_id, []).append(click)
    assert max(len(mine) for mine in per_user.values()) < 20
    for user, mine in per_user.items():
        entries = group.redis.lrange(keys.user_recent(user), 0, -1)
        assert sorted(entries) == sorted(keys.list_entry(c.item_id, c.event_time_ms) for c in mine), user

    async def read() -> tuple[list, dict]:
        client = aioredis.RedisCluster(host=HOST, port=valkey.ports[1])
        try:
            reader = FeatureReader(client)
            now_ms = time.time_ns() // 1_000_000
            signals = await reader.item_signals(list(CATALOGUE), now_ms)
            features = {user: await reader.user_features(user, now_ms) for user in per_user}
            return signals, features
        finally:
            await client.aclose()

    signals, features = asyncio.run(read())
    on_article = Counter(click.item_id for click in sent)
    for signal in signals:
        assert signal.popularity_1h == signal.popularity_24h == on_article[signal.article_id], signal
    for user, mine in per_user.items():
        assert features[user].category_affinities["Trousers"] == pytest.approx(len(mine), rel=1e-3), user
    dead = read_topic(group, group.topics.dead_letter, lambda found: False, timeout_s=1.5)
    assert not any(run.encode() in record.value() for record in dead)
