"""Applies click events to the online feature store, on a single Redis or a cluster.

A batch is applied in two pipelined rounds of Lua script calls (atelier.serving.feature_store.scripts):
first apply_article_clicks.lua (which clicks are on catalogue articles, their categories, click scores and
popularity), then apply_user_clicks.lua (recent clicks, profile, affinity, sessions). On a single server
each round is one call for the whole batch; on a cluster, one call per slot (the article shards' slots,
then the users'). Each call is atomic and marks each click it applied, so a batch retried after any failure
applies each part of each click exactly once.

With `replica_acks` set, each round ends with WAIT on every node it wrote to: the batch counts as done
only once that many replicas hold its writes, so a failover (a replica promoted after its primary died)
cannot lose a click the stream has already committed. Errors are redis-py's exceptions: connection errors,
timeouts and ReplicaAckError are transient (retry the batch); StoredDataError (a ResponseError) names the
event whose keys hold unexpected data.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import Any

from pydantic import Field, NonNegativeInt, PositiveInt
from pydantic_settings import SettingsConfigDict
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from atelier.serving import popularity
from atelier.serving.click_event import ClickRecord, InvalidClick
from atelier.serving.feature_store import keys
from atelier.serving.feature_store.scripts import APPLY_ARTICLE_CLICKS, APPLY_USER_CLICKS, Script, by_slot, run_pipeline
from atelier.serving.redis_clients import AsyncRedis, as_text
from atelier.serving.settings import Settings

log = logging.getLogger(__name__)

# The articles' script's answer per event.
APPLIED, DUPLICATE, UNKNOWN_ARTICLE = 1, 0, 2
_ERROR = re.compile(r"FEATURESTORE event=(\d+) id=")
DAY_S = 86400.0


class WriterSettings(Settings):
    """What the click writer keeps in Redis and for how long: STREAM_*, as only the stream workers write the store."""

    model_config = SettingsConfigDict(env_prefix="STREAM_")

    dedupe_ttl_s: float = Field(7 * DAY_S, ge=0.001)
    """How long an applied click's event id is remembered, so that a redelivered click is not applied again."""
    user_ttl_s: float = Field(30 * DAY_S, ge=0.001)
    """How long a user's keys (recent clicks, profile, category affinity) live after their last click."""
    item_ttl_s: float = Field(30 * DAY_S, ge=0.001)
    """How long an article's decayed click score lives after its last click. Not a spec requirement:
    bounds the keys of articles that stop being clicked (after 30 days a score has decayed to ~5 %)."""
    session_ttl_s: float = Field(30 * 60.0, ge=0.001)
    """How long a session's click list lives after its last click."""
    recent_cap: PositiveInt = 20
    """Most entries of a user's recent-clicks list (newest kept)."""
    session_cap: PositiveInt = 50
    """Most entries of a session's click list (newest kept)."""
    global_max_items: PositiveInt = popularity.GLOBAL_MAX_ITEMS
    """Most articles kept in the all-time (decayed) popularity ranking (split evenly over the article shards)."""
    replica_acks: NonNegativeInt = 0
    """Replicas that must hold a batch's writes (Redis WAIT) before its clicks count as applied: 0 for a
    single Redis without replicas; 1 on a cluster with a replica per primary (`atelier up` sets it with
    ATELIER_REDIS_CLUSTER_PRIMARIES), so that a failover loses no acknowledged click."""
    replica_ack_timeout_s: float = Field(0.25, gt=0)
    """How long a batch waits for its replica acknowledgements before it is retried (below
    STREAM_REDIS_TIMEOUT_S). A primary without a replica in sync (its replica just promoted, the old primary
    not yet back as its replica) takes no acknowledged write: its clicks wait in the retry tiers."""


class StoredDataError(ResponseError):
    """A key or stored number the batch needs holds something unexpected; that script call wrote nothing.

    Retrying will not help while the data stays as it is: apply the batch's other
    events without `event_index` (what was applied is recognised) and dead-letter that one.
    """

    def __init__(self, message: str, event_index: int) -> None:
        super().__init__(message)
        self.event_index = event_index


class ReplicaAckError(RedisError):
    """Fewer replicas than `replica_acks` confirmed a batch's writes in time (retry the batch)."""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def article_call(
    events: Sequence[ClickRecord], now_ms: int, settings: WriterSettings
) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of apply_article_clicks.lua for `events` (layout in the script)."""
    per_shard_cap = math.ceil(settings.global_max_items / keys.ARTICLE_SHARDS)
    script_keys: list[str] = []
    args: list[str | int] = [
        now_ms,
        _ms(settings.dedupe_ttl_s),
        _ms(settings.item_ttl_s),
        repr(popularity.DECAY_RATE),
        popularity.GLOBAL_EPOCH_S,
        per_shard_cap,
        len(popularity.WINDOWS),
    ]
    for event in events:
        event_s = event.event_time_ms / 1000
        shard = keys.article_shard(event.item_id)
        script_keys += [
            keys.global_popularity(shard),
            keys.item_metadata(event.item_id),
            keys.item_clicks(event.item_id),
            keys.article_dedupe(event.item_id, event.user_id, event.event_id),
            *(keys.bucket(window, shard, window.bucket_start(event_s)) for window in popularity.WINDOWS),
        ]
        args += [event.event_id, event.item_id, event.event_time_ms]
        args += [window.expires_at(event_s) for window in popularity.WINDOWS]
    return script_keys, args


def user_call(events: Sequence[tuple[ClickRecord, str]], settings: WriterSettings) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of apply_user_clicks.lua for (event, category) pairs (layout in the script)."""
    script_keys: list[str] = []
    args: list[str | int] = [
        _ms(settings.dedupe_ttl_s),
        _ms(settings.user_ttl_s),
        _ms(settings.session_ttl_s),
        settings.recent_cap,
        settings.session_cap,
        repr(popularity.DECAY_RATE),
    ]
    for event, category in events:
        user = event.user_id
        script_keys += [keys.user_recent(user), keys.user_profile(user), keys.user_affinity(user)]
        script_keys += [keys.dedupe(user, event.event_id), keys.session_clicks(user, event.session_id)]
        args += [event.event_id, event.item_id, event.event_time_ms, category, "1" if event.session_id else "0"]
    return script_keys, args


def check_events(events: Sequence[ClickRecord]) -> None:
    """Raises InvalidClick for an event the scripts cannot apply."""
    for event in events:
        problems = event.problems()
        if problems:
            raise InvalidClick(f"event {event.event_id!r}: " + "; ".join(f"{f}: {r}" for f, r in problems))


class ClickWriter:
    """Applies batches of clicks (see the module's docstring)."""

    def __init__(self, client: AsyncRedis, settings: WriterSettings | None = None) -> None:
        self._client = client
        self._settings = settings or WriterSettings()

    async def apply(self, events: Sequence[ClickRecord], now_ms: int | None = None) -> list[bool]:
        """Per event, True if applied now, False if it was a duplicate or its article is not in the catalogue.
        `now_ms` (tests) replaces the server clock, which decides only which popularity buckets are already expired."""
        if not events:
            return []
        check_events(events)
        settings = self._settings
        groups = by_slot(self._client, range(len(events)), lambda i: keys.item_metadata(events[i].item_id))
        calls = [(indices, article_call([events[i] for i in indices], now_ms or 0, settings)) for indices in groups]
        answers = await self._round(APPLY_ARTICLE_CLICKS, calls)
        status: dict[int, int] = {}
        category: dict[int, str] = {}
        for indices, answer in answers:
            for n, index in enumerate(indices):
                status[index], category[index] = int(answer[2 * n]), as_text(answer[2 * n + 1])

        known = [i for i in range(len(events)) if status[i] != UNKNOWN_ARTICLE]
        groups = by_slot(self._client, known, lambda i: keys.user_recent(events[i].user_id))
        calls = [(indices, user_call([(events[i], category[i]) for i in indices], settings)) for indices in groups]
        user_applied: dict[int, int] = {}
        for indices, answer in await self._round(APPLY_USER_CLICKS, calls):
            user_applied.update(zip(indices, (int(flag) for flag in answer), strict=True))
        _log_unknown([events[i] for i in range(len(events)) if status[i] == UNKNOWN_ARTICLE])
        return [status[i] == APPLIED or user_applied.get(i) == APPLIED for i in range(len(events))]

    async def _round(
        self, script: Script, calls: list[tuple[list[int], tuple[list[str], list[str | int]]]]
    ) -> list[tuple[list[int], list[Any]]]:
        """Runs one call of `script` per group in one pipeline (then WAIT on every node written to)."""
        if not calls:
            return []
        waits = await self._wait_targets([call_keys[0] for _, (call_keys, _) in calls])
        timeout_ms = _ms(self._settings.replica_ack_timeout_s)

        def build(pipe: Any) -> None:
            for _, (call_keys, args) in calls:
                script.queue(pipe, call_keys, args)
            for target in waits:
                pipe.execute_command("WAIT", self._settings.replica_acks, timeout_ms, **target)

        replies = await run_pipeline(self._client, build, raise_on_error=False)
        for (indices, _), reply in zip(calls, replies, strict=False):
            if isinstance(reply, ResponseError):
                match = _ERROR.match(str(reply))
                if match:
                    raise StoredDataError(str(reply), indices[int(match.group(1))])
            if isinstance(reply, Exception):
                raise reply
        for acknowledged in replies[len(calls) :]:
            if isinstance(acknowledged, Exception):
                raise acknowledged
            if acknowledged < self._settings.replica_acks:
                raise ReplicaAckError(
                    f"{acknowledged} of {self._settings.replica_acks} replicas acknowledged the batch's writes "
                    f"within {self._settings.replica_ack_timeout_s}s"
                )
        return [(indices, reply) for (indices, _), reply in zip(calls, replies, strict=False)]

    async def _wait_targets(self, first_keys: list[str]) -> list[dict[str, Any]]:
        """WAIT's routing, one per node written to: on a cluster the node of each slot (the pipeline sends a
        node's commands on one connection, so WAIT follows that node's writes); a single Redis needs one."""
        if not self._settings.replica_acks:
            return []
        if not isinstance(self._client, RedisCluster):
            return [{}]
        await self._client.initialize()  # the slots' map (a no-op once the client has it)
        nodes = {}
        for key in first_keys:
            node = self._client.get_node_from_key(key)
            nodes[node.name] = node
        return [{"target_nodes": node} for node in nodes.values()]


def _log_unknown(unknown: Sequence[ClickRecord]) -> None:
    if unknown:
        log.warning(
            "clicks on articles not in the catalogue dropped",
            extra={"count": len(unknown), "articles": sorted({event.item_id for event in unknown})[:10]},
        )
