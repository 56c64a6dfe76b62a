"""A pure-Python reference of the feature store's write scripts (apply_article_clicks.lua, apply_user_clicks.lua)
and the reader's maths, over a dict-based fake store.

For tests only: the integration tests apply the same events to Redis and here
and compare. Time arithmetic comes from atelier.serving.popularity, as the script's does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from atelier.serving import popularity
from atelier.serving.click_event import ClickRecord
from atelier.serving.feature_store import keys
from atelier.serving.feature_store.writer import WriterSettings


def decay(score: float, from_ms: int, to_ms: int) -> float:
    """`score` at `from_ms` decayed to `to_ms` (a later time; an earlier one leaves it as is)."""
    return score * popularity.decay_factor((to_ms - from_ms) / 1000)


def accumulate(score: float | None, time_ms: int | None, event_ms: int) -> tuple[float, int]:
    """(score, time) after one click at `event_ms`: the stored score decayed to the click, plus 1.

    A click older than the stored time adds its own decayed weight and keeps the stored time.
    """
    if score is None or time_ms is None:
        return 1.0, event_ms
    if event_ms >= time_ms:
        return decay(score, time_ms, event_ms) + 1, event_ms
    return score + decay(1.0, event_ms, time_ms), time_ms


def bucket_key(window: popularity.Window, article_id: str, event_ms: int) -> str:
    return keys.bucket(window, keys.article_shard(article_id), window.bucket_start(event_ms / 1000))


def bucket_expires_at(window: popularity.Window, event_ms: int) -> int:
    """Unix seconds at which the bucket holding `event_ms` expires."""
    return window.expires_at(event_ms / 1000)


def bucket_live(window: popularity.Window, event_ms: int, now_ms: int) -> bool:
    """Whether the event's bucket can still be counted: its expiry is after now."""
    return bucket_expires_at(window, event_ms) * 1000 > now_ms


def global_increment(event_ms: int) -> float:
    return popularity.global_increment(event_ms / 1000)


def insert_entry(entries: list[str], entry: str, event_ms: int, cap: int) -> None:
    """Inserts before the first entry not newer than the event (newest first), then caps."""
    for index, existing in enumerate(entries):
        if keys.parse_list_entry(existing)[1] <= event_ms:
            entries.insert(index, entry)
            break
    else:
        entries.append(entry)
    del entries[cap:]


@dataclass
class FakeStore:
    """The state the script writes, one dict per Redis type; expiries in ms (absolute)."""

    strings: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    hashes: dict[str, dict[str, float | str]] = field(default_factory=dict)
    zsets: dict[str, dict[str, float]] = field(default_factory=dict)
    expire_at_ms: dict[str, int] = field(default_factory=dict)

    def category(self, article_id: str) -> str:
        return str(self.hashes.get(keys.item_metadata(article_id), {}).get("category", ""))


def apply_batch(
    store: FakeStore, events: Iterable[ClickRecord], now_ms: int, settings: WriterSettings | None = None
) -> list[bool]:
    settings = settings or WriterSettings()
    events = list(events)
    applied = [_apply(store, event, now_ms, settings) for event in events]
    cap = math.ceil(settings.global_max_items / keys.ARTICLE_SHARDS)
    for shard in {keys.article_shard(event.item_id) for event, new in zip(events, applied, strict=True) if new}:
        # Redis ranks equal scores by member, and trims the lowest ranks first; each shard's set on its own.
        global_key = keys.global_popularity(shard)
        ranked = sorted(store.zsets.get(global_key, {}).items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        store.zsets[global_key] = dict(ranked[:cap])
    return applied


def _apply(store: FakeStore, event: ClickRecord, now_ms: int, settings: WriterSettings) -> bool:
    dedupe = keys.dedupe(event.user_id, event.event_id)
    if dedupe in store.strings or keys.item_metadata(event.item_id) not in store.hashes:
        return False  # a duplicate, or an article not in the catalogue: nothing changes
    for marker in (dedupe, keys.article_dedupe(event.item_id, event.user_id, event.event_id)):
        store.strings[marker] = "1"
        store.expire_at_ms[marker] = now_ms + round(settings.dedupe_ttl_s * 1000)
    ms = event.event_time_ms
    entry = keys.list_entry(event.item_id, ms)
    user_expiry = now_ms + round(settings.user_ttl_s * 1000)

    recent = keys.user_recent(event.user_id)
    insert_entry(store.lists.setdefault(recent, []), entry, ms, settings.recent_cap)
    profile = store.hashes.setdefault(keys.user_profile(event.user_id), {})
    profile[keys.LAST_ACTIVE_FIELD] = max(int(profile.get(keys.LAST_ACTIVE_FIELD, 0)), ms)
    category = store.category(event.item_id)
    affinity_key = keys.user_affinity(event.user_id)
    if category:
        _accumulate_fields(store.hashes.setdefault(affinity_key, {}), *keys.affinity_fields(category), ms)
    for key in (recent, keys.user_profile(event.user_id), affinity_key):
        if key in store.lists or key in store.hashes:
            store.expire_at_ms[key] = user_expiry

    clicks = keys.item_clicks(event.item_id)
    _accumulate_fields(store.hashes.setdefault(clicks, {}), keys.SCORE_FIELD, keys.TIME_FIELD, ms)
    store.expire_at_ms[clicks] = now_ms + round(settings.item_ttl_s * 1000)

    for window in popularity.WINDOWS:
        if bucket_live(window, ms, now_ms):
            key = bucket_key(window, event.item_id, ms)
            bucket = store.zsets.setdefault(key, {})
            bucket[event.item_id] = bucket.get(event.item_id, 0.0) + 1
            store.expire_at_ms[key] = bucket_expires_at(window, ms) * 1000
    scores = store.zsets.setdefault(keys.global_popularity(keys.article_shard(event.item_id)), {})
    scores[event.item_id] = scores.get(event.item_id, 0.0) + global_increment(ms)

    if event.session_id:
        session = keys.session_clicks(event.user_id, event.session_id)
        insert_entry(store.lists.setdefault(session, []), entry, ms, settings.session_cap)
        store.expire_at_ms[session] = now_ms + round(settings.session_ttl_s * 1000)
    return True


def _accumulate_fields(fields: dict[str, float | str], score_field: str, time_field: str, event_ms: int) -> None:
    score, time_ms = fields.get(score_field), fields.get(time_field)
    new_score, new_time = accumulate(
        None if score is None else float(score), None if time_ms is None else int(time_ms), event_ms
    )
    fields[score_field], fields[time_field] = new_score, new_time


def affinities_at(store: FakeStore, user_id: str, now_ms: int) -> dict[str, float]:
    """The user's category affinities decayed to `now_ms`, as the reader computes them."""
    fields = store.hashes.get(keys.user_affinity(user_id), {})
    found = {}
    for name, score in fields.items():
        if name.startswith(keys.AFFINITY_SCORE_PREFIX):
            category = name[len(keys.AFFINITY_SCORE_PREFIX) :]
            found[category] = decay(float(score), int(fields[keys.AFFINITY_TIME_PREFIX + category]), now_ms)
    return found


def click_score_at(store: FakeStore, article_id: str, now_ms: int) -> float:
    fields = store.hashes.get(keys.item_clicks(article_id))
    if not fields:
        return 0.0
    return decay(float(fields[keys.SCORE_FIELD]), int(fields[keys.TIME_FIELD]), now_ms)


def window_popularity(store: FakeStore, window: popularity.Window, article_id: str, now_ms: int) -> float:
    """Clicks of `article_id` summed over the window's active buckets at `now_ms`."""
    shard = keys.article_shard(article_id)
    return sum(
        store.zsets.get(key, {}).get(article_id, 0.0) for key in keys.window_buckets(window, shard, now_ms / 1000)
    )
