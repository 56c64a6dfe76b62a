"""`atelier catalog load`: embeds every article through Triton into Milvus, writes item metadata to
Redis, and seeds popularity from transactions.

The same loader fills the text collection (article texts) and, with vision on, the image
collection (article photos): `contents` says what is embedded. Idempotent and resumable: each
Milvus row keeps a hash of the model and the content it was embedded from, so a rerun (or a run
after an interruption) embeds only articles that are new or changed, and upserts never duplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import islice
from pathlib import Path

import numpy as np
from pymilvus import AsyncMilvusClient, MilvusClient
from tqdm import tqdm

from atelier.offline.catalog.contents import ArticleContent, TextContent, content_hash
from atelier.offline.catalog.hm_loader import HMDataset
from atelier.offline.catalog.schema import Article, Transaction
from atelier.serving import article_index, item_store, popularity, redis_clients
from atelier.serving.embedding import TextEmbedder
from atelier.serving.feature_store import keys
from atelier.serving.gathering import all_or_none
from atelier.serving.settings import Endpoints

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadSettings:
    index: article_index.IndexSettings = field(default_factory=article_index.IndexSettings)
    # Texts per Triton request, and requests in flight (lets dynamic batching fill batches).
    embed_batch: int = 64
    embed_concurrency: int = 3
    # Articles per Milvus upsert (and per resume check).
    write_batch: int = 1024
    embed_timeout_s: float = 120.0
    # Search answers from an index still being built can change from one call to the next.
    index_timeout_s: float = 600.0
    force: bool = False


@dataclass
class LoadResult:
    articles: int = 0
    embedded: int = 0
    skipped_unchanged: int = 0
    seconds: float = 0.0
    dimension: int = 0
    popularity_items: int = 0
    without_content: int = 0  # articles with nothing to embed (no photo)
    collection: str = ""  # the versioned collection filled
    model_version: int = 0  # the version of the model that filled it

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


def article_row(article: Article) -> dict[str, str]:
    return {"article_id": article.article_id, **article.fields(), "category": article.category()}


def _clip(value: str, field: str) -> str:
    limit = article_index.max_length(field)
    encoded = value.encode()
    return value if len(encoded) <= limit else encoded[:limit].decode(errors="ignore")


def _chunks(items: Iterable[Article], size: int) -> Iterator[list[Article]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def ensure_collection(
    client: MilvusClient, index: article_index.IndexSettings, dimension: int, fingerprint: str, version: int
) -> None:
    existing = article_index.collection_model(client, index.collection)
    if existing is not None and existing.get("dimension") != dimension:
        built_for = existing.get("dimension")
        log.warning("dropping %s: built for dimension %s, model gives %s", index.collection, built_for, dimension)
        client.drop_collection(index.collection)
        existing = None
    if existing is None:
        article_index.create_collection(client, index, dimension, model=fingerprint, model_version=version)


async def model_version(admin: MilvusClient, alias: str, content: ArticleContent) -> int:
    """The version of the content's model to fill `alias` with: the one that built what the alias names
    when Triton still serves it (a reload adds to that collection), else the newest Triton serves."""
    served = await content.served_versions()
    if not served:
        raise RuntimeError(f"Triton has no version of {content.model} loaded")
    bound = article_index.binding(admin, alias)
    if bound is not None and bound.model_version in served:
        return bound.model_version
    return max(served)


async def _existing_hashes(client: AsyncMilvusClient, collection: str, ids: Sequence[str]) -> dict[str, str]:
    rows = await client.query(
        collection,
        filter=f"{article_index.PRIMARY_KEY} in {list(ids)!r}".replace("'", '"'),
        output_fields=[article_index.TEXT_HASH_FIELD],
        consistency_level="Strong",
    )
    return {row[article_index.PRIMARY_KEY]: row[article_index.TEXT_HASH_FIELD] for row in rows}


async def _embed(content: ArticleContent, items: list[str | bytes], settings: LoadSettings) -> np.ndarray:
    """Embeds in batches of similar length (less padding), several batches in flight."""
    limit = asyncio.Semaphore(settings.embed_concurrency)
    order = sorted(range(len(items)), key=lambda i: len(items[i]))

    async def one(batch: list[int]) -> np.ndarray:
        async with limit:
            return await content.embed([items[i] for i in batch])

    batches = [order[i : i + settings.embed_batch] for i in range(0, len(order), settings.embed_batch)]
    vectors = np.concatenate(await all_or_none(one(b) for b in batches))
    result = np.empty_like(vectors)
    result[order] = vectors
    return result


async def load_articles(
    articles: Iterable[Article],
    total: int | None,
    endpoints: Endpoints,
    settings: LoadSettings,
    content: ArticleContent | None = None,
    version: int | None = None,
    switch_alias: bool = True,
) -> LoadResult:
    """Fills the collection `version` of the content's model (default: `model_version`) builds for the
    alias `settings.index.collection` with `content` of each article (default: its text); then points the
    alias at it, unless not `switch_alias` (a re-index switches when it is done)."""
    result = LoadResult()
    started = time.perf_counter()
    content = content or TextContent(TextEmbedder(endpoints.triton_address, timeout_s=settings.embed_timeout_s))
    milvus_uri = endpoints.milvus_uri
    admin = MilvusClient(uri=milvus_uri)
    milvus = AsyncMilvusClient(uri=milvus_uri)
    store = redis_clients.sync_client(endpoints)
    alias = settings.index.collection
    try:
        version = version or await model_version(admin, alias, content)
        content.use_version(version)
        collection = article_index.versioned_collection(alias, version)
        index = dataclasses.replace(settings.index, collection=collection)
        result.collection, result.model_version = collection, version
        fingerprint, result.dimension = await content.fingerprint()
        ensure_collection(admin, index, result.dimension, fingerprint, version)
        with tqdm(total=total, unit="article", desc=f"load {collection}", smoothing=0.05) as progress:
            async for chunk, rows in _prepared_chunks(articles, settings.write_batch):
                contents = [content.read(article) for article in chunk]
                hashes = [None if c is None else content_hash(fingerprint, c) for c in contents]
                present = [i for i, c in enumerate(contents) if c is not None]
                ids = [chunk[i].article_id for i in present]
                known = {} if settings.force or not ids else await _existing_hashes(milvus, collection, ids)
                todo = [i for i in present if known.get(chunk[i].article_id) != hashes[i]]
                if todo:
                    vectors = await _embed(content, [contents[i] for i in todo], settings)  # type: ignore[misc]
                    await milvus.upsert(
                        collection,
                        [
                            {
                                **{f: _clip(rows[i][f], f) for f in article_index.OUTPUT_FIELDS},
                                article_index.PRIMARY_KEY: chunk[i].article_id,
                                article_index.VECTOR_FIELD: vectors[j].tolist(),
                                article_index.TEXT_HASH_FIELD: hashes[i],
                            }
                            for j, i in enumerate(todo)
                        ],
                    )
                if content.writes_items:
                    item_store.write_items(store, rows)
                result.articles += len(chunk)
                result.embedded += len(todo)
                result.skipped_unchanged += len(present) - len(todo)
                result.without_content += len(chunk) - len(present)
                progress.update(len(chunk))
        await milvus.flush(collection)
        await _wait_for_index(milvus, collection, settings.index_timeout_s)
        if switch_alias:
            article_index.point_alias(admin, alias, collection)
        if content.writes_items:
            store.hset(
                item_store.CATALOG_META_KEY,
                mapping={
                    "articles": result.articles,
                    "collection": collection,
                    "model_fingerprint": fingerprint,
                    "model_version": version,
                    "dimension": result.dimension,
                    "loaded_at": datetime.now(UTC).isoformat(),
                },
            )
    finally:
        await content.close()
        await milvus.close()
        admin.close()
        store.close()
    result.seconds = time.perf_counter() - started
    return result


async def _wait_for_index(client: AsyncMilvusClient, collection: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        index = await client.describe_index(collection, article_index.VECTOR_FIELD)
        if index.get("pending_index_rows", 0) == 0 and index.get("indexed_rows", 0) >= index.get("total_rows", 0):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{collection}: index still building after {timeout_s:.0f}s ({index})")
        await asyncio.sleep(0.5)


async def _prepared_chunks(
    articles: Iterable[Article], size: int
) -> AsyncIterator[tuple[list[Article], list[dict[str, str]]]]:
    for chunk in _chunks(articles, size):
        yield chunk, [article_row(article) for article in chunk]
        await asyncio.sleep(0)


ARTICLES_PATH, IMAGES_PATH = item_store.ARTICLES_PATH, item_store.IMAGES_PATH


class NoCatalogue(RuntimeError):
    """No catalogue load recorded its files: nothing to re-embed from."""


def record_catalogue(endpoints: Endpoints, dataset: HMDataset) -> None:
    """Remembers which files the catalogue was loaded from, for later re-indexes."""
    store = redis_clients.sync_client(endpoints)
    try:
        store.hset(
            item_store.CATALOG_META_KEY,
            mapping={ARTICLES_PATH: str(dataset.articles), IMAGES_PATH: str(dataset.images or "")},
        )
    finally:
        store.close()


def recorded_catalogue(endpoints: Endpoints) -> HMDataset:
    store = redis_clients.sync_client(endpoints, decode_responses=True)
    try:
        meta = store.hgetall(item_store.CATALOG_META_KEY)
    finally:
        store.close()
    articles = Path(meta.get(ARTICLES_PATH) or "")
    if not meta.get(ARTICLES_PATH) or not articles.is_file():
        raise NoCatalogue(f"no catalogue files recorded (or {articles} is gone): run `atelier catalog load` first")
    images = meta.get(IMAGES_PATH)
    return HMDataset(articles.parent, articles, None, Path(images) if images else None)


def seed_popularity(
    store: redis_clients.SyncRedis, transactions: Iterable[Transaction], now: datetime | None = None
) -> int:
    """Seeds the 7-day buckets and the global set from purchases, the dataset's last day mapped to today.

    Transactions carry only a day, so the 1h and 24h windows are left to real
    clicks: seeding them would invent an hour-level precision the data lacks.
    """
    now = now or datetime.now(UTC)
    by_day: dict[date, Counter[str]] = {}
    for transaction in transactions:
        by_day.setdefault(transaction.day, Counter())[transaction.article_id] += 1
    if not by_day:
        return 0
    shift = now.date() - max(by_day)
    now_s = now.timestamp()
    global_scores: dict[str, float] = {}
    buckets: dict[str, tuple[dict[str, int], int]] = {}
    for day, counts in by_day.items():
        day_s = datetime.combine(day + shift, datetime.min.time(), tzinfo=UTC).timestamp()
        increment = popularity.global_increment(day_s)
        for article_id, count in counts.items():
            global_scores[article_id] = global_scores.get(article_id, 0.0) + count * increment
            if popularity.WEEK.expires_at(day_s) > now_s:
                shard = keys.article_shard(article_id)
                key = keys.bucket(popularity.WEEK, shard, popularity.WEEK.bucket_start(day_s))
                buckets.setdefault(key, ({}, popularity.WEEK.expires_at(day_s)))[0][article_id] = count
    top = dict(sorted(global_scores.items(), key=lambda kv: -kv[1])[: popularity.GLOBAL_MAX_ITEMS])
    by_shard: dict[int, dict[str, float]] = {}
    for article_id, score in top.items():
        by_shard.setdefault(keys.article_shard(article_id), {})[article_id] = score
    pipe = store.pipeline(transaction=False)
    for key, (counts, expires_at) in buckets.items():
        pipe.delete(key)
        pipe.zadd(key, counts)
        pipe.expireat(key, expires_at)
    for shard in range(keys.ARTICLE_SHARDS):
        pipe.delete(keys.global_popularity(shard))
        if by_shard.get(shard):
            pipe.zadd(keys.global_popularity(shard), by_shard[shard])
    pipe.execute()
    return len(top)
