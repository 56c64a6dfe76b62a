"""Reads the online feature store: user features, item signals, popular items, item metadata.

Scores are decayed to the caller's `now_ms`. Window popularity reads, per article shard, a short-lived
materialised union of the window's active buckets (keys.window_aggregate), rebuilt by whichever reader
finds it missing (window_aggregate.lua), so a request costs one pipelined round trip (one per node on a
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
from atelier.serving.feature_store.scripts import WINDOW_AGGREGATE, run_pipeline
from atelier.serving.ids import is_valid_id
from atelier.serving.redis_clients import AsyncRedis
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
        recent = [keys.parse_list_entry(_text(entry)) for entry in entries]
        recent.sort(key=lambda click: -click[1])  # already ordered by the writer; cheap insurance
        return UserFeatures(
            user_id=user_id,
            recent_clicks=recent,
            category_affinities=_affinities({_text(k): _text(v) for k, v in affinity_fields.items()}, now_ms),
            last_active_ms=None if last_active is None else int(float(_text(last_active))),
        )

    async def item_signals(self, article_ids: Sequence[str], now_ms: int) -> list[ItemSignal]:
        """Signals in the order of `article_ids`; zeros for an article nobody clicked. One pipeline: per
        window and article shard, window_aggregate.lua (rebuilding an expired aggregate), and each article's
        click score."""
        ids = list(article_ids)
        if not ids:
            return []
        by_shard: dict[int, list[str]] = {}
        for article_id in dict.fromkeys(ids):
            by_shard.setdefault(keys.article_shard(article_id), []).append(article_id)
        now_s = now_ms / 1000

        def build(pipe: Any) -> None:
            for window in popularity.WINDOWS:
                for shard, members in by_shard.items():
                    self._aggregate(pipe, window, shard, now_s, ["scores", *members])
            for article_id in ids:
                pipe.hmget(keys.item_clicks(article_id), keys.SCORE_FIELD, keys.TIME_FIELD)

        replies = iter(await run_pipeline(self._client, build))
        scores: dict[str, dict[str, float]] = {}
        for window in popularity.WINDOWS:
            found = scores.setdefault(window.name, {})
            for members in by_shard.values():
                found.update((m, float(s)) for m, s in zip(members, next(replies), strict=True) if s is not None)
        clicks = list(replies)
        return [
            ItemSignal(
                article_id=article_id,
                popularity_1h=scores[popularity.HOUR.name].get(article_id, 0.0),
                popularity_24h=scores[popularity.DAY.name].get(article_id, 0.0),
                popularity_7d=scores[popularity.WEEK.name].get(article_id, 0.0),
                click_score=_click_score(clicks[i], now_ms),
            )
            for i, article_id in enumerate(ids)
        ]

    async def popular(self, window: str | None, k: int, now_ms: int) -> tuple[list[tuple[str, float]], str]:
        """The top `k` (article_id, score) of the first non-empty tier from `window` on, and that tier: each
        tier's top k is the merge of every article shard's."""
        if k < 1:
            raise ValueError("k must be at least 1")
        tiers = fallback_tiers(window)
        now_s = now_ms / 1000

        def build(pipe: Any) -> None:
            for tier in tiers:
                for shard in range(keys.ARTICLE_SHARDS):
                    if tier == GLOBAL_TIER:
                        pipe.zrevrange(keys.global_popularity(shard), 0, k - 1, withscores=True)
                    else:
                        self._aggregate(pipe, _WINDOWS[tier], shard, now_s, ["top", k])

        replies = iter(await run_pipeline(self._client, build))
        for tier in tiers:
            merged: list[tuple[str, float]] = []
            for _ in range(keys.ARTICLE_SHARDS):
                reply = next(replies)
                pairs = reply if tier == GLOBAL_TIER else zip(reply[::2], reply[1::2], strict=True)
                merged += [(_text(member), float(score)) for member, score in pairs]
            if merged:
                top = sorted(merged, key=lambda pair: (-pair[1], pair[0]))[:k]
                if tier == GLOBAL_TIER:
                    return [(member, popularity.global_score_at(score, now_s)) for member, score in top], tier
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
            article_id: {_text(k): _text(v) for k, v in fields.items()}
            for article_id, fields in zip(ids, replies, strict=True)
            if fields
        }

    def _aggregate(
        self, pipe: Any, window: popularity.Window, shard: int, now_s: float, request: list[str | int]
    ) -> None:
        """Queues one window_aggregate.lua call for the shard's window ending at `now_s`."""
        script_keys = [keys.window_aggregate(window, shard), *keys.window_buckets(window, shard, now_s)]
        WINDOW_AGGREGATE.queue(pipe, script_keys, [self._aggregate_ttl_ms, *request])


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


def _click_score(fields: list[bytes | str | None], now_ms: int) -> float:
    score, time_ms = fields
    if score is None or time_ms is None:
        return 0.0
    return float(score) * popularity.decay_factor((now_ms - float(time_ms)) / 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
