"""The Milvus collection of article text embeddings, shared by the catalogue load and search.

One row per article: the embedding, the scalar fields search filters on, and
the fields a result shows, so a search needs no second lookup.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pymilvus import AsyncMilvusClient, DataType, MilvusClient
from pymilvus.exceptions import CollectionNotExistException, ErrorCode, MilvusException

from atelier.serving.articles import DISPLAY_FIELDS, FILTER_FIELDS
from atelier.serving.dependency import NotLoaded
from atelier.serving.index_names import IMAGE_COLLECTION as IMAGE_COLLECTION  # re-exported
from atelier.serving.index_names import TEXT_COLLECTION as TEXT_COLLECTION  # re-exported
from atelier.serving.settings import CollectionLayout

# Milvus fields are named as the article's (atelier.serving.articles): the filter attributes are
# scalar fields search filters on, the display fields are stored so a hit needs no second lookup.
OUTPUT_FIELDS = (*FILTER_FIELDS, *DISPLAY_FIELDS)
VECTOR_FIELD = "embedding"
PRIMARY_KEY = "article_id"
# Hash of the text that was embedded: a reload skips articles whose text and
# model are unchanged, which is also how an interrupted load resumes.
TEXT_HASH_FIELD = "text_hash"
FILTER_MAX_LENGTH = 128
DISPLAY_MAX_LENGTH = 256
# Free text and the hash run longer or shorter than the rest.
MAX_LENGTHS = {"description": 2048, TEXT_HASH_FIELD: 64}


def max_length(field: str) -> int:
    """The longest value Milvus stores in `field` (the catalogue load cuts longer ones)."""
    return MAX_LENGTHS.get(field, FILTER_MAX_LENGTH if field in FILTER_FIELDS else DISPLAY_MAX_LENGTH)


# Search reads these names, which are Milvus aliases of versioned collections: articles_text_v3 is the
# text collection the text_embedding model's version 3 built. Publishing a new version builds its
# collection beside the serving one, then switches the alias in one step.


def versioned_collection(alias: str, version: int) -> str:
    """The collection the model's `version` builds for `alias`."""
    return f"{alias}_v{version}"


@dataclass(frozen=True)
class IndexBinding:
    """The collection an alias names, and the version of the model that built it (None: not recorded,
    a collection from before versions)."""

    collection: str
    model_version: int | None


def _binding(description: Mapping[str, object]) -> IndexBinding:
    try:
        recorded = json.loads(str(description.get("description") or "{}"))
    except ValueError:
        recorded = {}
    version = recorded.get("model_version") if isinstance(recorded, dict) else None
    return IndexBinding(str(description["collection_name"]), version if isinstance(version, int) else None)


def binding(client: MilvusClient, alias: str) -> IndexBinding | None:
    """What `alias` names now (or the collection of that name from before aliases); None when nothing."""
    if not client.has_collection(alias):
        return None
    return _binding(client.describe_collection(alias))


async def resolve(client: AsyncMilvusClient, alias: str, timeout_s: float) -> IndexBinding | None:
    """`binding`, for search."""
    if not await client.has_collection(alias, timeout=timeout_s):
        return None
    return _binding(await client.describe_collection(alias, timeout=timeout_s))


def point_alias(client: MilvusClient, alias: str, collection: str) -> None:
    """Makes `alias` name `collection`, in one step when it named another. A collection named `alias`
    itself (from before versioned collections) is dropped first: the one moment `alias` names nothing."""
    # Asked by listing: describe_alias on a name that is no alias makes pymilvus log an error.
    is_alias = alias in client.list_aliases().get("aliases", [])
    current = client.describe_alias(alias)["collection_name"] if is_alias else None
    if current == collection:
        return
    if current is not None:
        client.alter_alias(collection, alias)
        return
    if client.has_collection(alias):
        client.drop_collection(alias)
    client.create_alias(collection, alias)


@dataclass(frozen=True)
class IndexSettings:
    collection: str = TEXT_COLLECTION
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    # Shards and loaded replicas (ATELIER_MILVUS_SHARDS, ATELIER_MILVUS_REPLICAS).
    layout: CollectionLayout = dataclasses.field(default_factory=CollectionLayout.from_env)


def create_collection(
    client: MilvusClient, settings: IndexSettings, dimension: int, model: str, model_version: int | None = None
) -> None:
    """Creates the collection with its HNSW index declared up front; its description records the model
    (`model`: its fingerprint) and the model version that fills it.

    Declaring the index at creation lets Milvus build it in the background as
    rows arrive; building it on a full collection in one call took minutes and
    dropped the connection (shared/platform-notes.md). The index is declared and the collection
    loaded here rather than by create_collection's index_params, which loads one replica only.
    """
    schema = MilvusClient.create_schema(
        auto_id=False,
        enable_dynamic_field=False,
        description=json.dumps({"model": model, "dimension": dimension, "model_version": model_version}),
    )
    schema.add_field(PRIMARY_KEY, DataType.VARCHAR, max_length=16, is_primary=True)
    schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dimension)
    for field in (*OUTPUT_FIELDS, TEXT_HASH_FIELD):
        schema.add_field(field, DataType.VARCHAR, max_length=max_length(field))
    index = client.prepare_index_params()
    index.add_index(
        field_name=VECTOR_FIELD,
        index_type="HNSW",
        metric_type="IP",  # embeddings are L2-normalised: inner product is cosine
        params={"M": settings.hnsw_m, "efConstruction": settings.hnsw_ef_construction},
    )
    layout = settings.layout
    shards = {} if layout.shards is None else {"num_shards": layout.shards}
    client.create_collection(settings.collection, schema=schema, **shards)
    client.create_index(settings.collection, index)
    client.load_collection(settings.collection, replica_number=layout.replicas)


def collection_model(client: MilvusClient, collection: str) -> dict[str, object] | None:
    """The model and dimension a collection was built with, or None when it does not exist."""
    if not client.has_collection(collection):
        return None
    description = client.describe_collection(collection).get("description", "")
    try:
        return json.loads(description)
    except ValueError:
        return {}


def filter_expression(filters: Mapping[str, Sequence[str]]) -> str:
    """`colour in ["Black"] and product_type in ["Trousers", "Shorts"]`; empty when no filter."""
    clauses = []
    for field, values in filters.items():
        if field not in FILTER_FIELDS:
            raise ValueError(f"unknown filter field {field!r}")
        if values:
            clauses.append(f"{field} in {json.dumps(list(values))}")
    return " and ".join(clauses)


@dataclass(frozen=True)
class Hit:
    article_id: str
    score: float
    fields: dict[str, str]


async def search(
    client: AsyncMilvusClient,
    collection: str,
    vector: np.ndarray,
    limit: int,
    filters: Mapping[str, Sequence[str]],
    timeout_s: float,
    ef: int,
) -> list[Hit]:
    """The collection's nearest articles; NotLoaded when the collection does not exist."""
    try:
        results = await client.search(
            collection,
            data=[vector.tolist()],
            anns_field=VECTOR_FIELD,
            filter=filter_expression(filters),
            limit=limit,
            output_fields=list(OUTPUT_FIELDS),
            search_params={"metric_type": "IP", "params": {"ef": max(ef, limit)}},
            timeout=timeout_s,
        )
    except MilvusException as error:
        if isinstance(error, CollectionNotExistException) or error.code == ErrorCode.COLLECTION_NOT_FOUND:
            raise NotLoaded(f"collection {collection} does not exist: {error.message}") from error
        raise
    return [Hit(hit["id"], float(hit["distance"]), dict(hit["entity"])) for hit in results[0]]
