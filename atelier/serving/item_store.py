"""Catalogue metadata in Redis: one hash per article plus the set of values of each filterable attribute.

Written by the catalogue load; read by the stream app (an article's category, and
whether it exists), the features service (popular items; whether a clicked article
exists) and search (known filter values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from atelier.serving.articles import FIELDS, FILTER_FIELDS
from atelier.serving.feature_store import keys
from atelier.serving.ids import is_valid_id
from atelier.serving.redis_clients import AsyncRedis, SyncRedis, as_text

# Every article field, and the category personalisation counts (atelier.serving.articles.category).
ITEM_FIELDS = (*FIELDS, "category")
CATALOG_META_KEY = "catalog:meta"
# Fields of CATALOG_META_KEY: the files the catalogue was loaded from (re-indexes; search's article photos).
ARTICLES_PATH = "articles_path"
IMAGES_PATH = "images_path"


def item_key(article_id: str) -> str:
    """The article's hash (hash-tagged by its shard: atelier.serving.feature_store.keys)."""
    return keys.item_metadata(article_id)


async def item_exists(client: AsyncRedis, article_id: str) -> bool:
    """Whether the catalogue holds the article (validate the id first: atelier.serving.ids)."""
    return bool(await client.exists(item_key(article_id)))


async def any_article_id(client: AsyncRedis) -> str | None:
    """One article of the catalogue (what benchmarks click on), or None when none is loaded."""
    async for key in client.scan_iter(match="item:*", count=1000):
        article_id = as_text(key).rpartition(":")[2]
        if is_valid_id(article_id) and item_key(article_id) == as_text(key):  # not item:...:clicks
            return article_id
    return None


def values_key(attribute: str) -> str:
    return f"catalog:values:{attribute}"


def write_items(client: SyncRedis, items: Iterable[Mapping[str, str]]) -> int:
    """Writes item hashes (each mapping has article_id and ITEM_FIELDS) in one pipeline."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for item in items:
        pipe.hset(item_key(item["article_id"]), mapping={f: item.get(f, "") for f in ITEM_FIELDS})
        for attribute in FILTER_FIELDS:
            if item.get(attribute):
                pipe.sadd(values_key(attribute), item[attribute])
        count += 1
    pipe.execute()
    return count


async def read_filter_values(client: AsyncRedis) -> dict[str, dict[str, str]]:
    """attribute -> {lower-cased value: value}, for case-insensitive filter matching."""
    pipe = client.pipeline(transaction=False)
    for attribute in FILTER_FIELDS:
        pipe.smembers(values_key(attribute))
    members = await pipe.execute()
    return {
        attribute: {as_text(value).lower(): as_text(value) for value in values}
        for attribute, values in zip(FILTER_FIELDS, members, strict=True)
    }
