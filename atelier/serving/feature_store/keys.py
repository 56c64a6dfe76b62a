"""Redis key schema of the online feature store, the one place that names its keys.

    dedupe:click:{user_id}:{event_id}
                                STRING  marker of an applied click (TTL); per user, so two users'
                                        event ids never collide
    user:{user_id}:recent       LIST    "article_id|event_ms", newest first, capped
    user:{user_id}:profile      HASH    last_active_ms
    user:{user_id}:affinity     HASH    s:{category} decayed score, t:{category} its time (ms)
    item:{article_id}:clicks    HASH    s decayed click score, t its time (ms)
    session:{session_id}:clicks LIST    "article_id|event_ms", newest first, capped, short TTL
    pop:{window}:{bucket_start} ZSET    article -> clicks in the bucket (atelier.serving.popularity)
    pop:{window}:agg            ZSET    short-lived union of the window's active buckets
    pop:global                  ZSET    epoch-relative decayed score (atelier.serving.popularity)
    item:{article_id}           HASH    catalogue metadata, field `category` (atelier.serving.item_store)

Ids are checked before they reach a key (atelier.serving.ids: letters, digits and
`. _ @ -`, no `:`), so no id can make one key read or write another. A click on
an article without its `item:{article_id}` hash is not applied (not in the catalogue).
Before issue 14 the dedupe marker was global, `dedupe:click:{event_id}`: markers of that
form are no longer read and expire with their TTL (STREAM_DEDUPE_TTL_S).

User keys share a TTL refreshed on each click. The Lua script builds the same
keys from the prefix/suffix pairs of `script_patterns()`; the field names and
the list entry format below are spelled in apply_clicks.lua too (the
integration tests read what the script wrote through this module).
"""

from __future__ import annotations

from collections.abc import Callable

from atelier.serving import item_store
from atelier.serving.popularity import Window

AFFINITY_SCORE_PREFIX = "s:"
AFFINITY_TIME_PREFIX = "t:"
SCORE_FIELD = "s"
TIME_FIELD = "t"
LAST_ACTIVE_FIELD = "last_active_ms"
ENTRY_SEPARATOR = "|"


DEDUPE_SEPARATOR = ":"


def dedupe(user_id: str, event_id: str) -> str:
    return _dedupe(f"{user_id}{DEDUPE_SEPARATOR}{event_id}")


def _dedupe(scoped_event_id: str) -> str:
    """The script passes `{user_id}:{event_id}` as the id of this key."""
    return f"dedupe:click:{scoped_event_id}"


def user_recent(user_id: str) -> str:
    return f"user:{user_id}:recent"


def user_profile(user_id: str) -> str:
    return f"user:{user_id}:profile"


def user_affinity(user_id: str) -> str:
    return f"user:{user_id}:affinity"


def item_clicks(article_id: str) -> str:
    return f"item:{article_id}:clicks"


def session_clicks(session_id: str) -> str:
    return f"session:{session_id}:clicks"


def item_metadata(article_id: str) -> str:
    return item_store.item_key(article_id)


def window_aggregate(window: Window) -> str:
    return f"pop:{window.name}:agg"


def bucket_prefix(window: Window) -> str:
    """`pop:{window}:`: the script appends the bucket start (s) to it."""
    prefix = window.key(0)[: -len("0")]
    if window.key(1_767_225_600) != f"{prefix}1767225600":
        raise RuntimeError(f"popularity bucket keys of {window.name} are not prefix + bucket start")
    return prefix


def affinity_fields(category: str) -> tuple[str, str]:
    return AFFINITY_SCORE_PREFIX + category, AFFINITY_TIME_PREFIX + category


def list_entry(article_id: str, event_ms: int) -> str:
    return f"{article_id}{ENTRY_SEPARATOR}{event_ms}"


def parse_list_entry(entry: str) -> tuple[str, int]:
    """(article_id, event_ms); article ids may contain the separator, the time never does."""
    article_id, _, event_ms = entry.rpartition(ENTRY_SEPARATOR)
    return article_id, int(event_ms)


_SENTINEL = "\x00"
_ID_KEYS: dict[str, Callable[[str], str]] = {
    "dedupe": _dedupe,
    "recent": user_recent,
    "profile": user_profile,
    "affinity": user_affinity,
    "item_clicks": item_clicks,
    "item": item_metadata,
    "session": session_clicks,
}
SCRIPT_KEY_ORDER = tuple(_ID_KEYS)


def script_patterns() -> list[str]:
    """prefix, suffix of each id-keyed key in SCRIPT_KEY_ORDER, flattened for the script's ARGV."""
    flat: list[str] = []
    for build in _ID_KEYS.values():
        prefix, _, suffix = build(_SENTINEL).partition(_SENTINEL)
        flat += [prefix, suffix]
    return flat
