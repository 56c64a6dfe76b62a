"""The feature store's reference maths (tests/feature_store_reference.py), its key schema and fallback tiers."""

from __future__ import annotations

import math

import pytest

from atelier.serving import popularity
from atelier.serving.click_event import ClickRecord
from atelier.serving.feature_store import WriterSettings, keys
from atelier.serving.feature_store.reader import fallback_tiers
from tests import feature_store_reference as reference

DAY_MS = 86_400_000
T = (popularity.GLOBAL_EPOCH_S + 40 * 86400) * 1000 + 123  # an arbitrary fixed clock (ms)


def click(event_id: str, event_ms: int, user: str = "u1", item: str = "a1", session: str = "") -> ClickRecord:
    return ClickRecord(event_id, user, item, 0, "search", "web", event_ms, session_id=session)


def test_decay_halves_every_seven_days_and_never_grows() -> None:
    assert reference.decay(4.0, T, T + 7 * DAY_MS) == pytest.approx(2.0, rel=1e-12)
    assert reference.decay(4.0, T, T + 7 * DAY_MS // 2) == pytest.approx(4 / math.sqrt(2), rel=1e-12)
    assert reference.decay(4.0, T, T - DAY_MS) == 4.0  # a time before the stored one does not inflate it


def test_accumulate_in_order_and_out_of_order() -> None:
    score, time_ms = reference.accumulate(None, None, T)
    assert (score, time_ms) == (1.0, T)
    score, time_ms = reference.accumulate(score, time_ms, T + 7 * DAY_MS)
    assert (score, time_ms) == (pytest.approx(1.5, rel=1e-12), T + 7 * DAY_MS)
    score, time_ms = reference.accumulate(score, time_ms, T + 14 * DAY_MS)
    assert (score, time_ms) == (pytest.approx(1.75, rel=1e-12), T + 14 * DAY_MS)
    # A click a week older than the stored time adds half a click and keeps the time.
    score, time_ms = reference.accumulate(score, time_ms, T + 7 * DAY_MS)
    assert (score, time_ms) == (pytest.approx(2.25, rel=1e-12), T + 14 * DAY_MS)
    # Applying the same clicks in any order gives the same score decayed to a later time.
    forward = reference.accumulate(*reference.accumulate(None, None, T), T + 3 * DAY_MS)
    backward = reference.accumulate(*reference.accumulate(None, None, T + 3 * DAY_MS), T)
    assert forward[1] == backward[1] and forward[0] == pytest.approx(backward[0], rel=1e-12)


def test_buckets_follow_popularity_windows() -> None:
    for window in popularity.WINDOWS:
        shard = keys.article_shard("a1")
        assert reference.bucket_key(window, "a1", T) == keys.bucket(window, shard, window.bucket_start(T / 1000))
        assert reference.bucket_key(window, "a1", T) == keys.window_buckets(window, shard, T / 1000)[0]
        assert reference.bucket_expires_at(window, T) == window.bucket_start(T / 1000) + window.bucket_s + window.span_s
        expires_ms = reference.bucket_expires_at(window, T) * 1000
        assert reference.bucket_live(window, T, expires_ms - 1)
        assert not reference.bucket_live(window, T, expires_ms)
        # The script gets the expiry as an offset from the bucket start: it must not depend on the bucket.
        assert window.expires_at(T / 1000) - window.bucket_start(T / 1000) == window.expires_at(0)
    # A bucket boundary, to the millisecond.
    boundary = popularity.HOUR.bucket_start(T / 1000) * 1000 + 300_000
    assert reference.bucket_key(popularity.HOUR, "a1", boundary - 1) != reference.bucket_key(
        popularity.HOUR, "a1", boundary
    )


def test_global_increment_is_epoch_relative() -> None:
    epoch_ms = popularity.GLOBAL_EPOCH_S * 1000
    assert reference.global_increment(epoch_ms) == 1.0
    stored = reference.global_increment(T) + reference.global_increment(T + 7 * DAY_MS)
    assert popularity.global_score_at(stored, (T + 7 * DAY_MS) / 1000) == pytest.approx(1.5, rel=1e-9)


def test_insert_entry_keeps_newest_first_and_caps() -> None:
    entries: list[str] = []
    for ms in (10, 30, 20, 5, 30):
        reference.insert_entry(entries, keys.list_entry(f"a{ms}", ms), ms, cap=4)
    assert [keys.parse_list_entry(e)[1] for e in entries] == [30, 30, 20, 10]
    reference.insert_entry(entries, keys.list_entry("old", 1), 1, cap=4)  # older than all of a full list
    assert len(entries) == 4 and keys.list_entry("old", 1) not in entries


def test_apply_batch_dedupes_and_writes_every_feature() -> None:
    store = reference.FakeStore()
    store.hashes[keys.item_metadata("a1")] = {"category": "Trousers"}
    now = T + 1000
    event = click("e1", T, session="s1")
    assert reference.apply_batch(store, [event, event], now) == [True, False]
    before = repr(store)
    assert reference.apply_batch(store, [event], now) == [False]
    assert repr(store) == before
    assert store.lists[keys.user_recent("u1")] == ["a1|" + str(T)]
    assert store.lists[keys.session_clicks("u1", "s1")] == ["a1|" + str(T)]
    assert store.hashes[keys.user_profile("u1")] == {"last_active_ms": T}
    assert store.hashes[keys.user_affinity("u1")] == {"s:Trousers": 1.0, "t:Trousers": T}
    assert store.hashes[keys.item_clicks("a1")] == {"s": 1.0, "t": T}
    for window in popularity.WINDOWS:
        assert store.zsets[reference.bucket_key(window, "a1", T)] == {"a1": 1.0}
    assert store.expire_at_ms[keys.dedupe("u1", "e1")] == now + 7 * DAY_MS
    assert store.expire_at_ms[keys.article_dedupe("a1", "u1", "e1")] == now + 7 * DAY_MS
    assert store.expire_at_ms[keys.user_recent("u1")] == now + 30 * DAY_MS
    assert reference.affinities_at(store, "u1", T + 7 * DAY_MS) == {"Trousers": pytest.approx(0.5, rel=1e-12)}
    assert reference.click_score_at(store, "a1", T + 14 * DAY_MS) == pytest.approx(0.25, rel=1e-12)
    assert reference.window_popularity(store, popularity.HOUR, "a1", T + 3_600_000 + 300_000) == 0


def test_dedupe_is_per_user_and_unknown_articles_change_nothing() -> None:
    store = reference.FakeStore()
    store.hashes[keys.item_metadata("a1")] = {"category": "Trousers"}
    now = T + 1000
    shared = [click("e1", T, user="u1"), click("e1", T, user="u2")]
    assert reference.apply_batch(store, shared, now) == [True, True]
    assert reference.apply_batch(store, shared, now) == [False, False]
    before = repr(store)
    assert reference.apply_batch(store, [click("e2", T, item="FAKE-ITEM")], now) == [False]
    assert repr(store) == before


def same_shard(count: int) -> list[str]:
    """`count` article ids of one article shard."""
    found = [f"x{n}" for n in range(1000) if keys.article_shard(f"x{n}") == 0]
    return found[:count]


def test_global_cap_keeps_the_highest_scores_of_each_shard() -> None:
    store = reference.FakeStore()
    a, b, c = same_shard(3)
    for item in (a, b, c):
        store.hashes[keys.item_metadata(item)] = {"category": "Dress"}
    settings = WriterSettings(global_max_items=2 * keys.ARTICLE_SHARDS)  # 2 per shard
    events = [click(f"{item}{n}", T, item=item) for item, count in ((a, 1), (b, 3), (c, 2)) for n in range(count)]
    reference.apply_batch(store, events, T, settings)
    assert set(store.zsets[keys.global_popularity(0)]) == {b, c}


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first `{` and the next `}`."""
    return key[key.index("{") + 1 : key.index("}")]


def test_key_schema() -> None:
    assert keys.dedupe("u", "e") == "dedupe:click:{u}:e"
    assert keys.user_recent("u") == "user:{u}:recent"
    assert keys.user_profile("u") == "user:{u}:profile"
    assert keys.user_affinity("u") == "user:{u}:affinity"
    assert keys.session_clicks("u", "s") == "user:{u}:session:s"
    shard = keys.article_shard("a")
    assert keys.item_metadata("a") == f"item:{{a{shard}}}:a"
    assert keys.item_clicks("a") == f"item:{{a{shard}}}:a:clicks"
    assert keys.article_dedupe("a", "u", "e") == f"dedupe:article:{{a{shard}}}:u:e"
    assert keys.window_aggregate(popularity.DAY, 3) == "pop:{a3}:24h:agg"
    assert keys.global_popularity(3) == "pop:{a3}:global"
    assert keys.affinity_fields("Dress") == ("s:Dress", "t:Dress")
    assert keys.parse_list_entry("a|b|123") == ("a|b", 123)


def test_each_script_call_touches_one_slot() -> None:
    """The keys of a user share the user's tag; those of an article, its popularity and its markers share
    the article's shard tag (so a cluster never answers CROSSSLOT)."""
    user_keys = [keys.dedupe("u", "e"), keys.user_recent("u"), keys.user_profile("u"), keys.user_affinity("u")]
    assert {hash_tag(key) for key in [*user_keys, keys.session_clicks("u", "s")]} == {"u"}
    shard = keys.article_shard("0108775015")
    article_keys = [
        keys.item_metadata("0108775015"),
        keys.item_clicks("0108775015"),
        keys.article_dedupe("0108775015", "u", "e"),
        keys.global_popularity(shard),
        *(keys.bucket(window, shard, 0) for window in popularity.WINDOWS),
        *(keys.window_aggregate(window, shard) for window in popularity.WINDOWS),
    ]
    assert {hash_tag(key) for key in article_keys} == {f"a{shard}"}
    # Articles spread over every shard.
    assert {keys.article_shard(f"{n:010d}") for n in range(2000)} == set(range(keys.ARTICLE_SHARDS))


def test_fallback_tiers() -> None:
    assert fallback_tiers(None) == ("24h", "7d", "global")
    assert fallback_tiers("1h") == ("1h", "24h", "7d", "global")
    assert fallback_tiers("7d") == ("7d", "global")
    assert fallback_tiers("global") == ("global",)
    with pytest.raises(ValueError, match="unknown popularity window"):
        fallback_tiers("1y")


def test_writer_settings_validate() -> None:
    with pytest.raises(ValueError, match="STREAM_RECENT_CAP"):
        WriterSettings(recent_cap=0)
    assert WriterSettings.from_env({"STREAM_RECENT_CAP": "5"}).recent_cap == 5
