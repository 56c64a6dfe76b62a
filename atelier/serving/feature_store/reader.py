"""Reads the online feature store: user features, item signals, popular items, item metadata.

Scores are decayed to the caller's `now_ms`. Window popularity reads a short-lived
materialised union of the window's active buckets (`pop:{window}:agg`), rebuilt
by whichever reader finds it missing, so a request costs one round trip (two when
an aggregate has expired) whatever the number of buckets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from redis.asyncio.client import Pipeline

from atelier.serving import popularity
from atelier.serving.feature_store import keys
from atelier.serving.ids import is_valid_id
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
    def __init__(self, client: aioredis.Redis, settings: ReaderSettings | None = None) -> None:
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
        """Signals in the order of `article_ids`; zeros for an article nobody clicked."""
        ids = list(article_ids)
        if not ids:
            return []
        pipe = self._client.pipeline(transaction=True)
        for window in popularity.WINDOWS:
            pipe.exists(keys.window_aggregate(window))
            pipe.zmscore(keys.window_aggregate(window), ids)
        for article_id in ids:
            pipe.hmget(keys.item_clicks(article_id), keys.SCORE_FIELD, keys.TIME_FIELD)
        replies = await pipe.execute()
        scores: dict[str, list[float | None]] = {}
        missing = []
        for index, window in enumerate(popularity.WINDOWS):
            if replies[2 * index]:
                scores[window.name] = replies[2 * index + 1]
            else:
                missing.append(window)
        if missing:
            pipe = self._client.pipeline(transaction=True)
            for window in missing:
                self._rebuild(pipe, window, now_ms)
                pipe.zmscore(keys.window_aggregate(window), ids)
            rebuilt = await pipe.execute()
            for index, window in enumerate(missing):
                scores[window.name] = rebuilt[3 * index + 2]
        clicks = replies[2 * len(popularity.WINDOWS) :]
        return [
            ItemSignal(
                article_id=article_id,
                popularity_1h=scores[popularity.HOUR.name][i] or 0.0,
                popularity_24h=scores[popularity.DAY.name][i] or 0.0,
                popularity_7d=scores[popularity.WEEK.name][i] or 0.0,
                click_score=_click_score(clicks[i], now_ms),
            )
            for i, article_id in enumerate(ids)
        ]

    async def popular(self, window: str | None, k: int, now_ms: int) -> tuple[list[tuple[str, float]], str]:
        """The top `k` (article_id, score) of the first non-empty tier from `window` on, and that tier."""
        if k < 1:
            raise ValueError("k must be at least 1")
        tiers = fallback_tiers(window)
        pipe = self._client.pipeline(transaction=True)
        for tier in tiers:
            if tier == GLOBAL_TIER:
                pipe.zrevrange(popularity.GLOBAL_KEY, 0, k - 1, withscores=True)
            else:
                pipe.exists(keys.window_aggregate(_WINDOWS[tier]))
                pipe.zrevrange(keys.window_aggregate(_WINDOWS[tier]), 0, k - 1, withscores=True)
        replies = iter(await pipe.execute())
        found: dict[str, list[tuple[str, float]] | None] = {}
        for tier in tiers:
            if tier == GLOBAL_TIER:
                found[tier] = next(replies)
            else:
                exists, top = next(replies), next(replies)
                found[tier] = top if exists else None
        # Rebuild the expired aggregates of the tiers that come before the first non-empty one.
        stale = []
        for tier in tiers:
            if found[tier]:
                break
            if found[tier] is None:
                stale.append(_WINDOWS[tier])
        if stale:
            pipe = self._client.pipeline(transaction=True)
            for stale_window in stale:
                self._rebuild(pipe, stale_window, now_ms)
                pipe.zrevrange(keys.window_aggregate(stale_window), 0, k - 1, withscores=True)
            rebuilt = await pipe.execute()
            for index, stale_window in enumerate(stale):
                found[stale_window.name] = rebuilt[3 * index + 2]
        for tier in tiers:
            top = found[tier]
            if top:
                if tier == GLOBAL_TIER:
                    now_s = now_ms / 1000
                    return [(_text(m), popularity.global_score_at(s, now_s)) for m, s in top], tier
                return [(_text(m), float(s)) for m, s in top], tier
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

    def _rebuild(self, pipe: Pipeline, window: popularity.Window, now_ms: int) -> None:
        """Queues 2 commands (in the caller's MULTI, so the aggregate never lives without its TTL)."""
        aggregate = keys.window_aggregate(window)
        pipe.zunionstore(aggregate, window.active_keys(now_ms / 1000))
        pipe.pexpire(aggregate, self._aggregate_ttl_ms)


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
