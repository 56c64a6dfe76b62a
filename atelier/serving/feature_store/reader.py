"""Reads the online feature store: user features, item signals, popular items, item metadata.

Scores are decayed to the caller's `now_ms`. Window popularity reads, per article shard, a short-lived
materialised union of the window's active buckets (keys.window_aggregate), rebuilt by whichever reader
finds it missing (read_windows.lua), so a request costs one pipelined round trip (one per node on a
cluster) whatever the number of buckets. The same calls run on a single Redis and on a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from atelier.serving import popularity
from atelier.serving.feature_store import keys
from atelier.serving.feature_store.scripts import READ_WINDOWS, by_slot, run_pipeline
from atelier.serving.ids import is_valid_id
from atelier.serving.redis_clients import AsyncRedis, as_text
from atelier.serving.settings import Settings

GLOBAL_TIER = "global"
DEFAULT_WINDOW = popularity.DAY.name
_TIERS = (*(window.name for window in popularity.WINDOWS), GLOBAL_TIER)
_WINDOWS = {window.name: window for window in popularity.WINDOWS}


class ReaderSettings(Settings):
    """What the features service's reads of the feature store may serve (FEATURES_*)."""

    model_config = SettingsConfigDict(env_prefix="FEATURES_")

    aggregate_ttl_s: float = Field(2.0, ge=0.001)
    """How long a popularity window's materialised union lives: popularity is at most this stale."""


@dataclass(frozen=True)
class UserFeatures:
    user_id: str
    # (article_id, event_ms), newest first.
    recent_clicks: list[tuple[str, int]]
    # category -> score decayed to now, strongest first.
    category_affinities: dict[str, float]
    last_active_ms: int | None


@dataclass(frozen=True)
class ItemSignal:
    article_id: str
    popularity_1h: float
    popularity_24h: float
    popularity_7d: float
    click_score: float


def fallback_tiers(window: str | None) -> tuple[str, ...]:
    """The requested tier and every longer one: 1h -> 24h -> 7d -> global; None means 24h."""
    requested = window or DEFAULT_WINDOW
    if requested not in _TIERS:
        raise ValueError(f"unknown popularity window {requested!r}, expected one of {', '.join(_TIERS)}")
    return _TIERS[_TIERS.index(requested) :]


class FeatureReader:
    def __init__(self, client: AsyncRedis, settings: ReaderSettings | None = None) -> None:
        self._client = client
        self._aggregate_ttl_ms = round((settings or ReaderSettings()).aggregate_ttl_s * 1000)

    async def user_features(self, user_id: str, now_ms: int) -> UserFeatures:
        pipe = self._client.pipeline(transaction=False)
        pipe.lrange(keys.user_recent(user_id), 0, -1)
        pipe.hgetall(keys.user_affinity(user_id))
        pipe.hget(keys.user_profile(user_id), keys.LAST_ACTIVE_FIELD)
        entries, affinity_fields, last_active = await pipe.execute()
        recent = [keys.parse_list_entry(as_text(entry)) for entry in entries]
        recent.sort(key=lambda click: -click[1])  # already ordered by the writer; cheap insurance
        return UserFeatures(
            user_id=user_id,
            recent_clicks=recent,
            category_affinities=_affinities({as_text(k): as_text(v) for k, v in affinity_fields.items()}, now_ms),
            last_active_ms=None if last_active is None else int(float(as_text(last_active))),
        )

    async def item_signals(self, article_ids: Sequence[str], now_ms: int) -> list[ItemSignal]:
        """Signals in the order of `article_ids`; zeros for an article nobody clicked. One read_windows.lua
        call (one per slot on a cluster) answers every window and click score."""
        ids = list(article_ids)
        if not ids:
            return []
        by_shard: dict[int, list[str]] = {}
        for article_id in dict.fromkeys(ids):
            by_shard.setdefault(keys.article_shard(article_id), []).append(article_id)
        calls = []
        for shards in by_slot(self._client, by_shard, keys.global_popularity):
            clicks = [keys.item_clicks(article_id) for shard in shards for article_id in by_shard[shard]]
            args: list[str | int] = [k for shard in shards for k in (len(by_shard[shard]), *by_shard[shard])]
            calls.append(_WindowsCall(shards, popularity.WINDOWS, "scores", clicks, args))
        found: dict[str, list[str]] = {}
        stride = len(popularity.WINDOWS) + 2
        for call, reply in zip(calls, await self._read_windows(calls, now_ms / 1000), strict=True):
            articles = [article_id for shard in call.shards for article_id in by_shard[shard]]
            for index, article_id in enumerate(articles):
                found[article_id] = [as_text(value) for value in reply[index * stride : (index + 1) * stride]]
        return [_signal(article_id, found[article_id], now_ms) for article_id in ids]

    async def popular(self, window: str | None, k: int, now_ms: int) -> tuple[list[tuple[str, float]], str]:
        """The top `k` (article_id, score) of the first non-empty tier from `window` on, and that tier: each
        tier's top k is the merge of every article shard's."""
        if k < 1:
            raise ValueError("k must be at least 1")
        tiers = fallback_tiers(window)
        windows = tuple(_WINDOWS.get(tier) for tier in tiers)  # None: the global set
        groups = by_slot(self._client, range(keys.ARTICLE_SHARDS), keys.global_popularity)
        calls = [_WindowsCall(shards, windows, "top", [], [k]) for shards in groups]
        merged: list[list[tuple[str, float]]] = [[] for _ in tiers]
        for reply in await self._read_windows(calls, now_ms / 1000):
            for per_tier in reply:
                for index, flat in enumerate(per_tier):
                    merged[index] += [
                        (as_text(m), float(score)) for m, score in zip(flat[::2], flat[1::2], strict=True)
                    ]
        for tier, candidates in zip(tiers, merged, strict=True):
            if candidates:
                top = sorted(candidates, key=lambda pair: (-pair[1], pair[0]))[:k]
                if tier == GLOBAL_TIER:
                    return [(member, popularity.global_score_at(score, now_ms / 1000)) for member, score in top], tier
                return top, tier
        return [], tiers[-1]

    async def items(self, article_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Catalogue metadata of the articles found; an unknown article is left out, and so is an id that
        is not one (atelier.serving.ids; say from popularity written before ids were checked), whose key
        could be another's (`item:0117860004:clicks`)."""
        ids = [article_id for article_id in article_ids if is_valid_id(article_id)]
        pipe = self._client.pipeline(transaction=False)
        for article_id in ids:
            pipe.hgetall(keys.item_metadata(article_id))
        replies = await pipe.execute()
        return {
            article_id: {as_text(k): as_text(v) for k, v in fields.items()}
            for article_id, fields in zip(ids, replies, strict=True)
            if fields
        }

    async def _read_windows(self, calls: list[_WindowsCall], now_s: float) -> list[Any]:
        """Runs the calls in one pipeline, first without the windows' bucket keys (the aggregates usually
        live); those answered 'rebuild' run again with them."""

        def build(pipe: Any, chosen: list[_WindowsCall], buckets: bool) -> None:
            for call in chosen:
                script_keys, header = call.keys_and_header(now_s, buckets, self._aggregate_ttl_ms)
                READ_WINDOWS.queue(pipe, script_keys, [*header, *call.args])

        replies = await run_pipeline(self._client, lambda pipe: build(pipe, calls, buckets=False))
        again = [index for index, reply in enumerate(replies) if reply in (b"rebuild", "rebuild")]
        if again:
            rebuilt = await run_pipeline(
                self._client, lambda pipe: build(pipe, [calls[i] for i in again], buckets=True)
            )
            for index, reply in zip(again, rebuilt, strict=True):
                replies[index] = reply
        return replies


@dataclass(frozen=True)
class _WindowsCall:
    """One read_windows.lua call: shards of one slot, the windows to read (None: the global set)."""

    shards: Sequence[int]
    windows: Sequence[popularity.Window | None]
    mode: str
    extra_keys: list[str]
    args: list[str | int]

    def keys_and_header(self, now_s: float, buckets: bool, ttl_ms: int) -> tuple[list[str], list[str | int]]:
        script_keys: list[str] = []
        for shard in self.shards:
            for window in self.windows:
                if window is None:
                    script_keys.append(keys.global_popularity(shard))
                else:
                    script_keys.append(keys.window_aggregate(window, shard))
                    if buckets:
                        script_keys += keys.window_buckets(window, shard, now_s)
        sizes = [-1 if window is None else window.buckets if buckets else 0 for window in self.windows]
        return [*script_keys, *self.extra_keys], [ttl_ms, self.mode, len(self.windows), *sizes, len(self.shards)]


def _signal(article_id: str, values: list[str], now_ms: int) -> ItemSignal:
    """An ItemSignal from read_windows.lua's answer: a score per window, then the clicks hash's s and t."""
    hour, day, week, score, time_ms = (float(value) if value else None for value in values)
    click_score = 0.0
    if score is not None and time_ms is not None:
        click_score = score * popularity.decay_factor((now_ms - time_ms) / 1000)
    return ItemSignal(
        article_id=article_id,
        popularity_1h=hour or 0.0,
        popularity_24h=day or 0.0,
        popularity_7d=week or 0.0,
        click_score=click_score,
    )


def _affinities(fields: dict[str, str], now_ms: int) -> dict[str, float]:
    found = {}
    for name, score in fields.items():
        if not name.startswith(keys.AFFINITY_SCORE_PREFIX):
            continue
        category = name[len(keys.AFFINITY_SCORE_PREFIX) :]
        time_ms = fields.get(keys.AFFINITY_TIME_PREFIX + category)
        if time_ms is None:
            continue
        found[category] = float(score) * popularity.decay_factor((now_ms - float(time_ms)) / 1000)
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))
