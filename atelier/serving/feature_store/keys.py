"""Redis key schema of the online feature store, the one place that names its keys.

Every key carries a hash tag (`{...}`), so that the keys one script call touches share a
Redis Cluster slot, and the same code runs on a single Redis and on a cluster:

  a user's slot, tag = the user id; written by apply_user_clicks.lua, one call per user
    user:{user_id}:recent               LIST    "article_id|event_ms", newest first, capped
    user:{user_id}:profile              HASH    last_active_ms
    user:{user_id}:affinity             HASH    s:{category} decayed score, t:{category} its time (ms)
    user:{user_id}:session:{session_id} LIST    the session's clicks, as recent, short TTL
    dedupe:click:{user_id}:{event_id}   STRING  marker of a click applied to the user's keys (TTL)

  an article shard's slot, tag = a{N}, N = crc32(article_id) mod ARTICLE_SHARDS; written by
  apply_article_clicks.lua, one call per shard
    item:{a7}:{article_id}              HASH    catalogue metadata, field `category` (atelier.serving.item_store)
    item:{a7}:{article_id}:clicks       HASH    s decayed click score, t its time (ms)
    pop:{a7}:{window}:{bucket_start}    ZSET    article -> clicks in the bucket (atelier.serving.popularity)
    pop:{a7}:{window}:agg               ZSET    short-lived union of the window's active buckets (read_windows.lua)
    pop:{a7}:global                     ZSET    epoch-relative decayed score, capped per shard
    dedupe:article:{a7}:{user_id}:{event_id}
                                        STRING  marker of a click applied to the shard's keys (TTL)

A click is applied in two script calls (its article's shard first, which says whether the article is in
the catalogue and its category, then its user's), each exactly once thanks to its own marker: a batch
retried after a failure between them applies only what is missing. Popularity of the whole catalogue is
the merge of the shards' sets (the reader reads every shard). The shard count is part of the schema:
changing it moves every article's keys.

Ids are checked before they reach a key (atelier.serving.ids: letters, digits and `. _ @ -`, no `:` and
no braces), so no id can make one key read or write another, nor pick another slot. Issue 16 moved the
keys to this schema; keys of the previous one (`user:{id}:recent` without the tag, `pop:global`, ...)
are no longer read and expire with their TTLs; `atelier catalog load` writes the catalogue hashes anew.

User keys share a TTL refreshed on each click. Field names and the list entry format below are spelled in
the scripts too (the integration tests read what the scripts wrote through this module).
"""

from __future__ import annotations

import zlib

from atelier.serving.popularity import Window

AFFINITY_SCORE_PREFIX = "s:"
AFFINITY_TIME_PREFIX = "t:"
SCORE_FIELD = "s"
TIME_FIELD = "t"
LAST_ACTIVE_FIELD = "last_active_ms"
ENTRY_SEPARATOR = "|"
ARTICLE_SHARDS = 16


# --- a user's slot ---


def dedupe(user_id: str, event_id: str) -> str:
    return f"dedupe:click:{{{user_id}}}:{event_id}"


def user_recent(user_id: str) -> str:
    return f"user:{{{user_id}}}:recent"


def user_profile(user_id: str) -> str:
    return f"user:{{{user_id}}}:profile"


def user_affinity(user_id: str) -> str:
    return f"user:{{{user_id}}}:affinity"


def session_clicks(user_id: str, session_id: str) -> str:
    return f"user:{{{user_id}}}:session:{session_id}"


# --- an article shard's slot ---


def article_shard(article_id: str) -> int:
    return zlib.crc32(article_id.encode()) % ARTICLE_SHARDS


def shard_tag(shard: int) -> str:
    return f"{{a{shard}}}"


def item_metadata(article_id: str) -> str:
    return f"item:{shard_tag(article_shard(article_id))}:{article_id}"


def item_clicks(article_id: str) -> str:
    return f"{item_metadata(article_id)}:clicks"


def article_dedupe(article_id: str, user_id: str, event_id: str) -> str:
    return f"dedupe:article:{shard_tag(article_shard(article_id))}:{user_id}:{event_id}"


def bucket(window: Window, shard: int, bucket_start: int) -> str:
    return f"pop:{shard_tag(shard)}:{window.name}:{bucket_start}"


def window_buckets(window: Window, shard: int, now_s: float) -> list[str]:
    """The shard's buckets making up the window ending at `now_s`, newest first."""
    return [bucket(window, shard, start) for start in window.active_starts(now_s)]


def window_aggregate(window: Window, shard: int) -> str:
    return f"pop:{shard_tag(shard)}:{window.name}:agg"


def global_popularity(shard: int) -> str:
    return f"pop:{shard_tag(shard)}:global"


def affinity_fields(category: str) -> tuple[str, str]:
    return AFFINITY_SCORE_PREFIX + category, AFFINITY_TIME_PREFIX + category


def list_entry(article_id: str, event_ms: int) -> str:
    return f"{article_id}{ENTRY_SEPARATOR}{event_ms}"


def parse_list_entry(entry: str) -> tuple[str, int]:
    """(article_id, event_ms); article ids may contain the separator, the time never does."""
    article_id, _, event_ms = entry.rpartition(ENTRY_SEPARATOR)
    return article_id, int(event_ms)
