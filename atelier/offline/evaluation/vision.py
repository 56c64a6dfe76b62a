"""The evaluation's vision section: do image and text-to-image search find the right garment?

- image -> image: held-out photos (atelier/offline/evaluation/photos.py) through SearchImage at the
  edge; precision@10 is the share of results whose product type shows the photo's
  Fashion-MNIST class (TYPE_CLASSES), against chance: the share of catalogue photos of that class.
- text -> image: "<colour family> <garment>" ("black trousers") through CLIP's text tower,
  searched in the image collection directly: what CLIP alone understands, without the text
  collection or the reranker. Relevant: the type's class and the colour family both match;
  class-only precision alongside.

Hybrid against text-only search runs with the relevance queries (relevance.py, stage HYBRID).
A stack without vision answers SearchImage with FAILED_PRECONDITION: `probe` says so and the
section is skipped.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from pymilvus import AsyncMilvusClient

from atelier.offline.catalog.article_images import CLASS_TYPES, COLOUR_RGB, TYPE_CLASSES
from atelier.offline.catalog.fashion_mnist import CLASS_NAMES, FashionMnistUnavailable
from atelier.offline.catalog.schema import Article
from atelier.offline.evaluation.client import Ranked
from atelier.offline.evaluation.photos import QueryPhoto, held_out_photos
from atelier.offline.evaluation.queries import colour_family
from atelier.serving import article_index
from atelier.serving.settings import Endpoints
from atelier.serving.vision import ClipEncoder
from fashion.v1 import degradation_pb2

K = 10
PER_CLASS = 20
# Colour families common enough that most garments come in them.
COLOUR_FAMILIES = ("black", "white", "grey", "blue", "red", "pink", "beige", "green")
# product_type_name -> the word a shopper types, where its lower-cased name is not that word.
GARMENT_WORDS: Mapping[str, str] = {"Leggings/Tights": "leggings"}
TEXT_BATCH = 32  # below clip_text's max_batch_size
MILVUS_TIMEOUT_S = 10.0
HNSW_EF = 128


class ImageSearcher(Protocol):
    def search_image(self, image: bytes, k: int, user_id: str = "") -> Ranked: ...


NOT_READY = degradation_pb2.DegradationReason.Name(degradation_pb2.DEGRADATION_REASON_MODEL_NOT_READY)


def probe(client: ImageSearcher, seed: int) -> str | None:
    """None when the stack answers image searches; otherwise why not (vision off, no image collection)."""
    try:
        _, files = held_out_photos(1, seed)
    except FashionMnistUnavailable as error:
        return f"no held-out query photos: {error}"
    try:
        answer = client.search_image(files[0], 1)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return error.details()
        raise
    # Vision on, but no CLIP version served yet: the answer is the popular fallback, saying so.
    waiting = [degradation for degradation in answer.degradations if degradation.endswith(NOT_READY)]
    return f"no CLIP model served yet ({'; '.join(waiting)})" if waiting else None


def precision_at_k(relevant: Sequence[bool], k: int = K) -> float:
    """Relevant results among the first k, over k: a short answer counts its missing places as misses."""
    return sum(bool(r) for r in relevant[:k]) / k


def class_precision(product_types: Sequence[str], label: int, k: int = K) -> float:
    return precision_at_k([TYPE_CLASSES.get(t) == label for t in product_types], k)


def photographed(articles: Iterable[Article], image_path: Callable[[str], Path | None]) -> list[Article]:
    """The articles with a photo file; when there is no photo file at all here (the catalogue was
    loaded elsewhere), those the synthetic catalogue photographs: a type in TYPE_CLASSES and a
    colour in COLOUR_RGB."""
    articles = list(articles)
    with_file = [a for a in articles if (path := image_path(a.article_id)) is not None and path.is_file()]
    if with_file:
        return with_file
    return [a for a in articles if a.product_type in TYPE_CLASSES and a.colour in COLOUR_RGB]


def chance_baseline(photos: Sequence[Article]) -> dict[int, float]:
    """Fashion-MNIST class -> share of catalogue photos showing it: a random answer's precision."""
    counts = Counter(TYPE_CLASSES.get(a.product_type) for a in photos)
    return {label: counts[label] / len(photos) if photos else 0.0 for label in CLASS_TYPES}


@dataclass
class ClassPrecision:
    """Precision values per Fashion-MNIST class."""

    values: dict[int, list[float]] = field(default_factory=dict)

    def add(self, label: int, value: float) -> None:
        self.values.setdefault(label, []).append(value)

    def means(self) -> dict[int, float]:
        return {label: statistics.fmean(values) for label, values in sorted(self.values.items())}

    def mean(self) -> float:
        """The mean over classes (each class weighs the same, however many queries it had)."""
        means = self.means()
        return statistics.fmean(means.values()) if means else 0.0


def evaluate_image_search(
    client: ImageSearcher,
    photos: Sequence[QueryPhoto],
    files: Sequence[bytes],
    baseline: Mapping[int, float],
    k: int = K,
) -> dict[str, Any]:
    table = ClassPrecision()
    degraded = 0
    for photo, data in zip(photos, files, strict=True):
        answer = client.search_image(data, k)
        degraded += bool(answer.degradations)
        table.add(photo.label, class_precision(answer.product_types, photo.label, k))
    means = table.means()
    return {
        "k": k,
        "queries": len(photos),
        "degraded": degraded,
        "by_class": {
            CLASS_NAMES[label]: {
                "precision": value,
                "chance": baseline.get(label, 0.0),
                "queries": len(table.values[label]),
            }
            for label, value in means.items()
        },
        "precision": table.mean(),
        "chance": statistics.fmean(baseline.get(label, 0.0) for label in means) if means else 0.0,
    }


@dataclass(frozen=True)
class TextImageQuery:
    text: str
    label: int  # the Fashion-MNIST class the garment word shows
    family: str

    def relevance(self, product_type: str, colour: str) -> tuple[bool, bool]:
        """(the class matches, the class and the colour family match)."""
        same_class = TYPE_CLASSES.get(product_type) == self.label
        return same_class, same_class and colour_family(colour) == self.family


def garment_word(product_type: str) -> str:
    return GARMENT_WORDS.get(product_type, product_type.lower())


def text_image_queries(
    photos: Iterable[Article], families: Sequence[str] = COLOUR_FAMILIES, min_relevant: int = K
) -> list[TextImageQuery]:
    """A query per photographed product type and colour family whose (class, family) has at least
    `min_relevant` catalogue photos, so that a perfect answer scores 1."""
    sizes = Counter((TYPE_CLASSES.get(a.product_type), colour_family(a.colour)) for a in photos)
    return [
        TextImageQuery(f"{family} {garment_word(product_type)}", label, family)
        for label, types in CLASS_TYPES.items()
        for product_type in types
        for family in families
        if sizes[(label, family)] >= min_relevant
    ]


def evaluate_text_to_image(
    queries: Sequence[TextImageQuery], answers: Sequence[Sequence[tuple[str, str]]], k: int = K
) -> dict[str, Any]:
    """Precision@k of (class and colour) and of class alone; `answers` hold each query's
    (product_type, colour) results, best first."""
    both, by_class = ClassPrecision(), ClassPrecision()
    for query, answer in zip(queries, answers, strict=True):
        marks = [query.relevance(product_type, colour) for product_type, colour in answer]
        by_class.add(query.label, precision_at_k([m[0] for m in marks], k))
        both.add(query.label, precision_at_k([m[1] for m in marks], k))
    values = [v for vs in both.values.values() for v in vs]
    class_values = [v for vs in by_class.values.values() for v in vs]
    both_means, class_means = both.means(), by_class.means()
    return {
        "k": k,
        "queries": len(queries),
        "precision": statistics.fmean(values) if values else 0.0,
        "class_precision": statistics.fmean(class_values) if class_values else 0.0,
        "by_class": {
            CLASS_NAMES[label]: {
                "precision": both_means[label],
                "class_precision": class_means[label],
                "queries": len(both.values[label]),
            }
            for label in both_means
        },
    }


async def clip_text_answers(endpoints: Endpoints, texts: Sequence[str], k: int = K) -> list[list[tuple[str, str]]]:
    """(product_type, colour) of each text's k nearest article photos by CLIP, through Triton and Milvus."""
    encoder = ClipEncoder(endpoints.triton_address, timeout_s=30.0)
    milvus = AsyncMilvusClient(uri=endpoints.milvus_uri)
    answers = []
    try:
        for start in range(0, len(texts), TEXT_BATCH):
            for vector in await encoder.embed_texts(texts[start : start + TEXT_BATCH]):
                hits = await article_index.search(
                    milvus, article_index.IMAGE_COLLECTION, vector, k, {}, MILVUS_TIMEOUT_S, HNSW_EF
                )
                answers.append([(hit.fields.get("product_type", ""), hit.fields.get("colour", "")) for hit in hits])
    finally:
        await encoder.close()
        await milvus.close()
    return answers


def off(reason: str) -> dict[str, Any]:
    return {"enabled": False, "reason": reason}


def evaluate(
    client: ImageSearcher,
    endpoints: Endpoints,
    articles: Sequence[Article],
    image_path: Callable[[str], Path | None],
    per_class: int,
    seed: int,
) -> dict[str, Any]:
    """The whole section against a stack with vision on."""
    photos = photographed(articles, image_path)
    queries, files = held_out_photos(per_class, seed)
    print(f"{len(queries)} held-out photos through SearchImage ...", flush=True)
    image = evaluate_image_search(client, queries, files, chance_baseline(photos))
    text_queries = text_image_queries(photos)
    print(f"{len(text_queries)} colour and garment queries through CLIP's text tower ...", flush=True)
    answers = asyncio.run(clip_text_answers(endpoints, [q.text for q in text_queries]))
    text = evaluate_text_to_image(text_queries, answers)
    return {"enabled": True, "catalogue_photos": len(photos), "image_to_image": image, "text_to_image": text}
