"""The online feature store on a real Valkey server: the Lua writer (checked against reference.py), the reader."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from atelier.serving import popularity
from atelier.serving.click_event import ClickRecord
from atelier.serving.feature_store import (
    ClickWriter,
    FeatureReader,
    ReaderSettings,
    ReplicaAckError,
    StoredDataError,
    WriterSettings,
    keys,
)
from atelier.stack.components import redis_server_binary
from atelier.stack.readiness import port_in_use
from tests import feature_store_reference as reference
from tests.integration.support import valkey_cluster

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Server:
    """A single Valkey server or a Valkey cluster (3 primaries, a replica each), reached at `port`."""

    port: int
    cluster: bool

    def sync(self, **options: object) -> redis.Redis:
        kind = redis.RedisCluster if self.cluster else redis.Redis
        return kind(host="127.0.0.1", port=self.port, **options)

    def asynchronous(self) -> aioredis.Redis:
        kind = aioredis.RedisCluster if self.cluster else aioredis.Redis
        return kind(host="127.0.0.1", port=self.port)


def free_ports(count: int) -> list[int]:
    return [p for p in range(27700, 27800) if not port_in_use("127.0.0.1", p)][:count]


@pytest.fixture(scope="module", params=["single", "cluster"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Every test runs on a single server and on a cluster: the same code, only the client differs."""
    data_dir: Path = tmp_path_factory.mktemp("valkey")
    if request.param == "cluster":
        with valkey_cluster.running(data_dir, valkey_cluster.free_ports(6), primaries=3) as cluster:
            yield Server(cluster.ports[0], cluster=True)
        return
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [
            str(redis_server_binary()),
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(data_dir), "--logfile", str(data_dir / "valkey.log")),
        ]
    )
    probe = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            assert process.poll() is None, (data_dir / "valkey.log").read_text()
            assert time.monotonic() < deadline, "valkey-server did not start"
            time.sleep(0.05)
    probe.close()
    yield Server(port, cluster=False)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def sync_client(server: Server) -> Iterator[redis.Redis]:
    client = server.sync(decode_responses=True)
    client.flushall(**everywhere(client))
    yield client
    client.close()


@pytest.fixture
async def client(server: Server, sync_client: redis.Redis) -> AsyncIterator[aioredis.Redis]:
    client = server.asynchronous()
    yield client
    await client.aclose()


@pytest.fixture
def raw_client(server: Server) -> Iterator[redis.Redis]:
    client = server.sync()
    yield client
    client.close()


def everywhere(client: redis.Redis) -> dict[str, object]:
    """A keyless command's routing to every primary of a cluster (redis-py sends it to one node by default)."""
    return {"target_nodes": redis.RedisCluster.PRIMARIES} if isinstance(client, redis.RedisCluster) else {}


def now_ms() -> int:
    return int(time.time() * 1000)


def click(event_id: str, event_ms: int, user: str = "u1", item: str = "a1", session: str = "") -> ClickRecord:
    return ClickRecord(event_id, user, item, 0, "search", "web", event_ms, session_id=session)


def add_items(client: redis.Redis, categories: dict[str, str]) -> None:
    for article_id, category in categories.items():
        client.hset(keys.item_metadata(article_id), mapping={"name": f"article {article_id}", "category": category})


def snapshot(client: redis.Redis) -> dict[str, tuple[bytes, int]]:
    """Every key's serialized value and absolute expiry (ms)."""
    raw = _RAW[0]
    return {key: (raw.dump(key), client.pexpiretime(key)) for key in client.keys("*", **everywhere(client))}


_RAW: list[redis.Redis] = []  # the undecoded client of the running test (DUMP answers bytes)


@pytest.fixture(autouse=True)
def _raw_for_snapshots(raw_client: redis.Redis) -> Iterator[None]:
    _RAW[:] = [raw_client]
    yield
    _RAW.clear()


def fake_from(client: redis.Redis) -> reference.FakeStore:
    """A reference store holding the catalogue hashes the server holds."""
    store = reference.FakeStore()
    for key in client.keys("item:*", **everywhere(client)):
        store.hashes[key] = dict(client.hgetall(key))
    return store


def assert_matches_reference(client: redis.Redis, store: reference.FakeStore) -> None:
    """Every key the script wrote equals the reference's state (scores to 1e-9 relative)."""
    expected = {*store.strings, *store.lists, *store.hashes, *store.zsets}
    assert set(client.keys("*", **everywhere(client))) == expected
    for key, value in store.strings.items():
        assert client.get(key) == value
    for key, entries in store.lists.items():
        assert client.lrange(key, 0, -1) == entries, key
    for key, fields in store.hashes.items():
        stored = client.hgetall(key)
        assert set(stored) == set(fields), key
        for name, value in fields.items():
            if isinstance(value, str):
                assert stored[name] == value
            else:
                assert float(stored[name]) == pytest.approx(value, rel=1e-9), (key, name)
    for key, members in store.zsets.items():
        stored = dict(client.zrange(key, 0, -1, withscores=True))
        assert stored.keys() == members.keys(), key
        for member, score in members.items():
            assert stored[member] == pytest.approx(score, rel=1e-9), (key, member)


# --- writer ---


async def test_duplicate_event_changes_nothing(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    add_items(sync_client, {"a1": "Trousers"})
    writer = ClickWriter(client)
    t = now_ms()
    first = click("e1", t, session="s1")
    assert await writer.apply([first, first]) == [True, False]  # a duplicate inside one batch
    before = snapshot(sync_client)
    assert keys.dedupe("u1", "e1") in before
    assert await writer.apply([first]) == [False]
    assert await writer.apply([click("e1", t + 1000, item="a2")]) == [False]  # same user and id, other payload
    assert snapshot(sync_client) == before
    ttl_ms = sync_client.pttl(keys.dedupe("u1", "e1"))
    assert 7 * DAY_MS - 60_000 < ttl_ms <= 7 * DAY_MS


async def test_dedupe_is_per_user(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    add_items(sync_client, {"a1": "Trousers"})
    writer = ClickWriter(client)
    t = now_ms()
    both = [click("e1", t, user="u1"), click("e1", t, user="u2")]
    assert await writer.apply(both) == [True, True]
    assert await writer.apply(both) == [False, False]
    for user in ("u1", "u2"):
        assert sync_client.llen(keys.user_recent(user)) == 1
    assert float(sync_client.hget(keys.item_clicks("a1"), "s")) == pytest.approx(2.0)


async def test_click_on_an_article_not_in_the_catalogue_changes_nothing(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    add_items(sync_client, {"a1": "Trousers"})
    writer = ClickWriter(client)
    t = now_ms()
    before = snapshot(sync_client)
    assert await writer.apply([click("e1", t, item="FAKE-ITEM")]) == [False]
    assert snapshot(sync_client) == before  # not in popularity, not in the user's clicks, no dedupe marker
    assert await writer.apply([click("e2", t, item="FAKE-ITEM"), click("e3", t)]) == [False, True]
    assert sync_client.zscore(global_key("FAKE-ITEM"), "FAKE-ITEM") is None
    assert sync_client.zscore(global_key("a1"), "a1") is not None


def global_key(article_id: str) -> str:
    return keys.global_popularity(keys.article_shard(article_id))


def _corrupt_recent(c: redis.Redis) -> None:
    c.set(keys.user_recent("u3"), "not a list")


def _corrupt_bucket(c: redis.Redis) -> None:
    c.set(reference.bucket_key(popularity.DAY, "a1", now_ms()), "not a zset")


def _corrupt_affinity(c: redis.Redis) -> None:
    c.hset(keys.user_affinity("u3"), mapping={"s:Trousers": "abc", "t:Trousers": "1"})


def _corrupt_item_clicks(c: redis.Redis) -> None:
    c.hset(keys.item_clicks("a3"), mapping={"s": "2"})  # score without its time


def _corrupt_session(c: redis.Redis) -> None:
    c.hset(keys.session_clicks("u3", "s3"), mapping={"x": "1"})


def _corrupt_global(c: redis.Redis) -> None:
    c.delete(global_key("a1"))
    c.rpush(global_key("a1"), "x")


@pytest.mark.parametrize(
    ("corrupt", "event_index"),
    [
        (_corrupt_recent, 2),
        (_corrupt_bucket, 0),
        (_corrupt_affinity, 2),
        (_corrupt_item_clicks, 2),
        (_corrupt_session, 2),
        (_corrupt_global, 0),
    ],
)
async def test_bad_stored_data_is_named_and_the_rest_applied_once_on_retry(
    client: aioredis.Redis, sync_client: redis.Redis, corrupt, event_index: int
) -> None:
    """The script call that finds bad data writes nothing (the corrupt key is left as it was); the handler's
    retry without that event applies every other click exactly once (each part's marker), as the reference."""
    add_items(sync_client, {"a1": "Trousers", "a3": "Trousers"})
    store = fake_from(sync_client)
    writer = ClickWriter(client)
    t = now_ms()
    seed = click("seed", t - 5000)
    await writer.apply([seed], now_ms=t)
    reference.apply_batch(store, [seed], t)
    corrupt(sync_client)
    corrupted = {key: value for key, value in snapshot(sync_client).items() if key not in _reference_keys(store)}
    batch = [click("b1", t), click("b2", t + 1, user="u2"), click("b3", t + 2, user="u3", item="a3", session="s3")]
    with pytest.raises(StoredDataError) as raised:
        await writer.apply(batch, now_ms=t)
    assert raised.value.event_index == event_index
    assert isinstance(raised.value, redis.ResponseError)
    rest = [event for index, event in enumerate(batch) if index != event_index]
    while True:  # as the stream's handler: each event whose keys hold bad data is left out
        try:
            await writer.apply(rest, now_ms=t)
            break
        except StoredDataError as error:
            rest.pop(error.event_index)
    assert await writer.apply(rest, now_ms=t) == [False] * len(rest)
    reference.apply_batch(store, rest, t)
    for event in rest:
        assert sync_client.lrange(keys.user_recent(event.user_id), 0, 0) == [
            keys.list_entry(event.item_id, event.event_time_ms)
        ]
    after = snapshot(sync_client)
    for key, value in corrupted.items():
        assert after.get(key) == value, key  # never overwritten


def _reference_keys(store: reference.FakeStore) -> set[str]:
    return {*store.strings, *store.lists, *store.hashes, *store.zsets}


async def test_replica_acknowledgements(server: Server, client: aioredis.Redis, sync_client: redis.Redis) -> None:
    """With replica_acks, a batch counts as applied once a replica of each node written to holds it (WAIT on the
    connection that wrote): the cluster's replicas do; a single server has none, so the batch is to be retried
    (its second run finds every click applied)."""
    add_items(sync_client, {f"a{i}": "Dress" for i in range(20)})
    writer = ClickWriter(client, WriterSettings(replica_acks=1, replica_ack_timeout_s=0.5))
    batch = [click(f"w{i}", now_ms(), user=f"u{i}", item=f"a{i}") for i in range(20)]
    if server.cluster:
        assert await writer.apply(batch) == [True] * 20
    else:
        with pytest.raises(ReplicaAckError, match="0 of 1 replicas"):
            await writer.apply(batch)  # the articles' round was written, not acknowledged
        assert await ClickWriter(client).apply(batch) == [True] * 20  # the users' part was still to do
    assert await ClickWriter(client).apply(batch) == [False] * 20
    assert all(sync_client.llen(keys.user_recent(f"u{i}")) == 1 for i in range(20))


async def test_script_is_reloaded_after_script_flush(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    add_items(sync_client, {"a1": "Trousers"})
    writer = ClickWriter(client)
    assert await writer.apply([click("e1", now_ms())]) == [True]
    sync_client.script_flush()  # on a cluster, redis-py sends it to every primary
    assert await writer.apply([click("e2", now_ms())]) == [True]


async def test_affinity_and_click_decay_match_reference(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    categories = {"a1": "Trousers", "a2": "Trousers", "a3": "Dress"}
    add_items(sync_client, categories)
    store = fake_from(sync_client)
    writer = ClickWriter(client)
    now = now_ms()
    t = now - 8 * DAY_MS
    half_week = 7 * DAY_MS // 2
    timeline = [click("c1", t), click("c2", t + half_week, item="a2"), click("c3", t + 7 * DAY_MS)]
    for event in timeline:  # one batch each: the stored state between clicks must round-trip too
        assert await writer.apply([event], now_ms=now) == [True]
        reference.apply_batch(store, [event], now)
    assert_matches_reference(sync_client, store)
    # Closed form: half-life 7 days -> each 3.5 days multiplies by 2 ** -0.5.
    expected = (1 * 2**-0.5 + 1) * 2**-0.5 + 1
    affinity = sync_client.hgetall(keys.user_affinity("u1"))
    assert float(affinity["s:Trousers"]) == pytest.approx(expected, rel=1e-12)
    assert int(affinity["t:Trousers"]) == t + 7 * DAY_MS
    assert float(sync_client.hget(keys.item_clicks("a1"), "s")) == pytest.approx(0.5 + 1, rel=1e-12)

    late = click("c4", t + DAY_MS)  # out of order: adds its own decayed weight, the time stays
    await writer.apply([late], now_ms=now)
    reference.apply_batch(store, [late], now)
    affinity = sync_client.hgetall(keys.user_affinity("u1"))
    assert float(affinity["s:Trousers"]) == pytest.approx(expected + 2 ** (-6 / 7), rel=1e-12)
    assert int(affinity["t:Trousers"]) == t + 7 * DAY_MS
    assert int(sync_client.hget(keys.user_profile("u1"), "last_active_ms")) == t + 7 * DAY_MS
    assert_matches_reference(sync_client, store)

    sync_client.hset(keys.item_metadata("plain"), "name", "no category")
    store.hashes[keys.item_metadata("plain")] = {"name": "no category"}
    no_category = click("c5", t + 7 * DAY_MS + 1, item="plain")  # affinity skipped, the rest applied
    assert await writer.apply([no_category], now_ms=now) == [True]
    reference.apply_batch(store, [no_category], now)
    assert_matches_reference(sync_client, store)
    assert set(sync_client.hkeys(keys.user_affinity("u1"))) == {"s:Trousers", "t:Trousers"}


async def test_bucket_keys_and_expiry(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    add_items(sync_client, {"fresh": "Dress", "older": "Dress", "old": "Dress"})
    writer = ClickWriter(client)
    now = now_ms()
    fresh, two_hours, nine_days = now - 1000, now - 2 * HOUR_MS, now - 9 * DAY_MS
    await writer.apply(
        [click("f", fresh, item="fresh"), click("h", two_hours, item="older"), click("d", nine_days, item="old")],
        now_ms=now,
    )
    for window in popularity.WINDOWS:
        key = reference.bucket_key(window, "fresh", fresh)
        assert sync_client.zscore(key, "fresh") == 1
        assert sync_client.expiretime(key) == window.expires_at(fresh / 1000)
        assert sync_client.pexpiretime(key) == window.expires_at(fresh / 1000) * 1000
    # Two hours ago: out of the 1h window's life, still in 24h and 7d.
    assert sync_client.zscore(reference.bucket_key(popularity.HOUR, "older", two_hours), "older") is None
    assert sync_client.zscore(reference.bucket_key(popularity.DAY, "older", two_hours), "older") == 1
    assert sync_client.zscore(reference.bucket_key(popularity.WEEK, "older", two_hours), "older") == 1
    # Nine days ago: no bucket at all, but the global set counts it (decayed).
    buckets = [k for k in sync_client.keys("pop:*", **everywhere(sync_client)) if k != global_key("old")]
    assert not [k for k in buckets if sync_client.zscore(k, "old")]
    assert sync_client.zscore(global_key("old"), "old") == pytest.approx(
        popularity.global_increment(nine_days / 1000), rel=1e-12
    )
    assert sync_client.ttl(global_key("old")) == -1


async def test_recent_and_session_lists(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    add_items(sync_client, {f"a{i}": "Dress" for i in range(25)} | {"late": "Dress"})
    writer = ClickWriter(client, WriterSettings(session_cap=5, session_ttl_s=1800))
    now = now_ms()
    events = [click(f"e{i}", now - (30 - i) * 1000, item=f"a{i}", session="s1") for i in range(25)]
    assert await writer.apply(events, now_ms=now) == [True] * 25
    recent = sync_client.lrange(keys.user_recent("u1"), 0, -1)
    assert recent == [keys.list_entry(f"a{i}", now - (30 - i) * 1000) for i in range(24, 4, -1)]
    late = click("late", now - 15_500, item="late")  # between a14 and a15
    await writer.apply([late], now_ms=now)
    recent = [keys.parse_list_entry(e) for e in sync_client.lrange(keys.user_recent("u1"), 0, -1)]
    assert len(recent) == 20 and ("late", now - 15_500) in recent
    assert [t for _, t in recent] == sorted((t for _, t in recent), reverse=True)
    session = sync_client.lrange(keys.session_clicks("u1", "s1"), 0, -1)
    assert [keys.parse_list_entry(e)[0] for e in session] == ["a24", "a23", "a22", "a21", "a20"]
    assert 1800 * 1000 - 60_000 < sync_client.pttl(keys.session_clicks("u1", "s1")) <= 1800 * 1000
    for key in (keys.user_recent("u1"), keys.user_profile("u1")):
        assert 30 * DAY_MS - 60_000 < sync_client.pttl(key) <= 30 * DAY_MS
    assert 30 * DAY_MS - 60_000 < sync_client.pttl(keys.item_clicks("a1")) <= 30 * DAY_MS


async def test_global_set_is_capped_per_shard(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    settings = WriterSettings(global_max_items=5 * keys.ARTICLE_SHARDS)  # 5 per shard
    writer = ClickWriter(client, settings)
    articles = [f"g{n}" for n in range(1000) if keys.article_shard(f"g{n}") == 0][:8]
    add_items(sync_client, dict.fromkeys(articles, "Dress"))
    store = fake_from(sync_client)
    now = now_ms()
    # The i-th article is clicked i times: the five most clicked stay.
    events = [click(f"{a}-{n}", now - 1000, item=a) for i, a in enumerate(articles, 1) for n in range(i)]
    await writer.apply(events, now_ms=now)
    reference.apply_batch(store, events, now, settings)
    kept = [m for m, _ in sync_client.zrevrange(keys.global_popularity(0), 0, -1, withscores=True)]
    assert kept == articles[:2:-1]
    assert_matches_reference(sync_client, store)


async def test_random_batches_match_reference(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    """Many users, items and categories, out-of-order times and redelivered events, in batches of 37."""
    rng = random.Random(7)
    categories = {f"a{i}": f"cat{i % 4}" for i in range(30)}
    add_items(sync_client, categories)
    store = fake_from(sync_client)
    settings = WriterSettings(recent_cap=6, session_cap=4, global_max_items=20)
    writer = ClickWriter(client, settings)
    now = now_ms()
    events = []
    for i in range(400):
        event_ms = now - rng.randrange(0, 9 * DAY_MS) if rng.random() < 0.3 else now - i * 60_000
        events.append(
            click(
                f"r{i}",
                event_ms,
                user=f"u{rng.randrange(6)}",
                item=f"a{rng.randrange(35)}",  # a30..a34 are not in the catalogue: never applied
                session=rng.choice(["", "s1", "s2"]),
            )
        )
    events += rng.sample(events, 60)  # redeliveries
    rng.shuffle(events)
    applied = []
    for start in range(0, len(events), 37):
        batch = events[start : start + 37]
        got = await writer.apply(batch, now_ms=now)
        assert got == reference.apply_batch(store, batch, now, settings)
        applied += got
    assert sum(applied) == len({e.event_id for e in events if e.item_id in categories}) > 300
    assert_matches_reference(sync_client, store)


# --- reader ---


async def test_user_features_decayed_to_now(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    categories = {"a1": "Trousers", "a2": "Dress"}
    add_items(sync_client, categories)
    store = fake_from(sync_client)
    now = now_ms()
    events = [click("1", now - 7 * DAY_MS, item="a2"), click("2", now - DAY_MS), click("3", now - HOUR_MS)]
    await ClickWriter(client).apply(events, now_ms=now)
    reference.apply_batch(store, events, now)
    later = now + 7 * DAY_MS
    features = await FeatureReader(client).user_features("u1", later)
    assert features.recent_clicks == [("a1", now - HOUR_MS), ("a1", now - DAY_MS), ("a2", now - 7 * DAY_MS)]
    assert features.last_active_ms == now - HOUR_MS
    assert list(features.category_affinities) == ["Trousers", "Dress"]  # strongest first
    expected = reference.affinities_at(store, "u1", later)
    for category, score in expected.items():
        assert features.category_affinities[category] == pytest.approx(score, rel=1e-12)
    assert features.category_affinities["Dress"] == pytest.approx(0.25, rel=1e-12)  # two half-lives old

    nobody = await FeatureReader(client).user_features("nobody", later)
    assert nobody.recent_clicks == [] and nobody.category_affinities == {} and nobody.last_active_ms is None


async def test_item_signals_per_window(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    add_items(sync_client, {"x": "Dress", "y": "Dress"})
    store = fake_from(sync_client)
    now = now_ms()
    events = [
        click("1", now - 10 * 60_000, item="x"),
        click("2", now - 3 * HOUR_MS, item="x"),
        click("3", now - 3 * DAY_MS, item="x"),
        click("4", now - 3 * DAY_MS, item="y"),
    ]
    await ClickWriter(client).apply(events, now_ms=now)
    reference.apply_batch(store, events, now)
    reader = FeatureReader(client, ReaderSettings(aggregate_ttl_s=2))
    x, y, z = await reader.item_signals(["x", "y", "z"], now)
    assert (x.popularity_1h, x.popularity_24h, x.popularity_7d) == (1, 2, 3)
    assert (y.popularity_1h, y.popularity_24h, y.popularity_7d) == (0, 0, 1)
    assert (z.popularity_1h, z.popularity_24h, z.popularity_7d, z.click_score) == (0, 0, 0, 0)
    assert x.click_score == pytest.approx(reference.click_score_at(store, "x", now), rel=1e-12)
    for window in popularity.WINDOWS:
        assert reference.window_popularity(store, window, "x", now) == getattr(x, f"popularity_{window.name}")
        assert 0 < sync_client.pttl(keys.window_aggregate(window, keys.article_shard("x"))) <= 2000

    # The aggregates serve until they expire (deleted here), then are rebuilt with the new clicks: `w` shares
    # x's shard, whose aggregates hold x's clicks (an empty union is no key, so it is rebuilt at each read).
    w = next(f"w{n}" for n in range(1000) if keys.article_shard(f"w{n}") == keys.article_shard("x"))
    add_items(sync_client, {w: "Dress"})
    await ClickWriter(client).apply([click("5", now, item=w)], now_ms=now)
    assert (await reader.item_signals([w], now))[0].popularity_1h == 0
    for window in popularity.WINDOWS:
        sync_client.delete(keys.window_aggregate(window, keys.article_shard(w)))
    assert (await reader.item_signals([w], now))[0].popularity_1h == 1


async def test_popular_falls_back_through_tiers(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    now = now_ms()
    reader = FeatureReader(client, ReaderSettings(aggregate_ttl_s=0.05))
    add_items(sync_client, {"w": "Dress", "d": "Dress", "h": "Dress"})

    async def popular(window: str | None, k: int = 3) -> tuple[list[tuple[str, float]], str]:
        await asyncio.sleep(0.06)  # past the aggregates' TTL: each step sees the latest buckets
        return await reader.popular(window, k, now)

    assert await popular(None) == ([], "global")
    sync_client.zadd(global_key("g1"), {"g1": popularity.global_increment(now / 1000 - 7 * 86400)})
    sync_client.zadd(global_key("g2"), {"g2": 1.0})
    top, tier = await popular(None)
    assert tier == "global" and top[0][0] == "g1"
    assert top[0][1] == pytest.approx(0.5, rel=1e-9)  # one click a half-life ago
    assert top[1][1] == pytest.approx(popularity.global_score_at(1.0, now / 1000), rel=1e-12)

    writer = ClickWriter(client)
    await writer.apply([click("w", now - 3 * DAY_MS, item="w")], now_ms=now)
    assert (await popular("24h"))[1] == "7d"
    assert (await popular("1h"))[1] == "7d"
    assert (await popular("global"))[1] == "global"
    await writer.apply([click(f"d{i}", now - 3 * HOUR_MS, item="d") for i in range(2)], now_ms=now)
    assert await popular(None) == ([("d", 2.0)], "24h")
    assert (await popular("1h"))[1] == "24h"
    assert await popular("7d") == ([("d", 2.0), ("w", 1.0)], "7d")
    await writer.apply([click("h", now - 60_000, item="h")], now_ms=now)
    assert await popular("1h") == ([("h", 1.0)], "1h")
    assert await popular("24h", k=1) == ([("d", 2.0)], "24h")
    with pytest.raises(ValueError, match="unknown popularity window"):
        await reader.popular("2h", 3, now)


async def test_items_metadata(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    add_items(sync_client, {"a1": "Trousers"})
    found = await FeatureReader(client).items(["a1", "missing"])
    assert found == {"a1": {"name": "article a1", "category": "Trousers"}}
    sync_client.hset(keys.item_clicks("a1"), mapping={"s": "1", "t": "1"})
    assert await FeatureReader(client).items(["a1:clicks"]) == {}  # never item:a1:clicks


# --- throughput (measured, not asserted) ---


async def test_apply_throughput(client: aioredis.Redis, sync_client: redis.Redis) -> None:
    rng = random.Random(3)
    add_items(sync_client, {f"a{i}": f"cat{i % 40}" for i in range(2000)})
    now = now_ms()
    events = [
        click(f"t{i}", now - rng.randrange(0, DAY_MS), user=f"u{rng.randrange(2000)}", item=f"a{rng.randrange(2000)}")
        for i in range(20_000)
    ]
    writer = ClickWriter(client)
    started = time.perf_counter()
    for start in range(0, len(events), 100):
        await writer.apply(events[start : start + 100])
    elapsed = time.perf_counter() - started
    rate = len(events) / elapsed
    print(f"\napply throughput: {len(events)} events in batches of 100: {elapsed:.2f} s, {rate:,.0f} events/s")
