"""The reranker's training pairs and held-out check sets, drawn from the catalogue.

Queries come from `atelier.offline.evaluation.queries` (its training side only); an article's label is
its grade for the query over the query's best grade, so 1.0 meets every constraint and 0.0 is
another garment. A query's candidates are what retrieval would hand the reranker: its nearest
passages by MiniLM cosine over an embedded sample of the catalogue (a mix of grades, the hard
cases), plus a few random articles with the same noun (near misses) and a few random others.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from atelier.offline.catalog.schema import Article
from atelier.offline.evaluation.queries import (
    SHOPPER_WORDS,
    AttributeQuery,
    by_noun,
    generate_queries,
    graded_queries,
    group_phrase,
    is_held_out,
    query_from,
    shopper_words_of,
)

EMBED_BATCH = 64
# Shoppers' words are many (atelier/offline/evaluation/queries.SHOPPER_WORDS) and each is rare among the
# queries, while the catalogue's words also fill every passage: training queries use them more
# often than the evaluation's half, so "navy" or "blush pink" is seen often enough to be learnt.
TRAINING_SHOPPER_SHARE = 0.75
# Even so, the words of rare colours and garments ("pale grey", "pjs") come up a few times in
# thousands of queries, too few to learn: a full run draws more queries until each shopper's word
# of the vocabulary is in at least 80 (atelier/offline/training/command.py; "navy", ~120, is learnt).
# Draws in a row that may bring nothing new before giving up (a small catalogue may lack a word's
# garment or colour); the rarest word of the full catalogue comes about once in 250 draws.
COVERAGE_PATIENCE = 20_000


@dataclass(frozen=True)
class Pair:
    query: str
    passage: str  # exactly Article.text(), as search rebuilds it from the stored fields
    label: float  # grade / max_grade, in [0, 1]
    article_id: str


@dataclass(frozen=True)
class QueryGroup:
    """One query's candidates; a training batch is made of whole groups."""

    query: AttributeQuery
    pairs: tuple[Pair, ...]


@dataclass(frozen=True)
class CandidateCounts:
    nearest: int = 10  # top passages by cosine over the embedded sample
    same_noun: int = 4
    random: int = 2


@dataclass(frozen=True)
class HeldOutQuery:
    query: AttributeQuery
    grades: dict[str, int]  # article_id -> grade over the embedded sample
    candidates: tuple[Article, ...]  # in cosine order


def text_encoder() -> Any:
    """The packaged MiniLM TextEncoder of the text_embedding model (its defaults, whatever the environment),
    in this process."""
    from atelier.inference.text_embedding import TextEmbeddingSettings, TextEncoder

    return TextEncoder(TextEmbeddingSettings.from_env({}))


def embed(encoder: Any, texts: Sequence[str], mode: str) -> np.ndarray:
    """[len(texts), dim] L2-normalised float32 vectors, in `texts` order."""
    # Batches of similar lengths pad less; the order is fixed, so the vectors are too.
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    vectors = np.empty((len(texts), encoder.dimension), dtype=np.float32)
    for start in range(0, len(order), EMBED_BATCH):
        rows = order[start : start + EMBED_BATCH]
        vectors[rows] = encoder.encode([texts[i] for i in rows], [mode] * len(rows))
    return vectors


@dataclass(frozen=True)
class EmbeddedSample:
    articles: tuple[Article, ...]
    vectors: np.ndarray  # passage embeddings, row i for articles[i]

    def nearest(self, query_vectors: np.ndarray, n: int) -> np.ndarray:
        """[queries, n] indices of the most similar articles by cosine, best first (ties by index)."""
        scores = query_vectors @ self.vectors.T
        return np.argsort(-scores, axis=1, kind="stable")[:, :n]


def embed_sample(encoder: Any, catalogue: Sequence[Article], size: int, seed: int) -> EmbeddedSample:
    articles = tuple(random.Random(seed).sample(list(catalogue), min(size, len(catalogue))))
    return EmbeddedSample(articles, embed(encoder, [article.text() for article in articles], "passage"))


def training_queries(
    articles: Sequence[Article], n: int, seed: int, per_shopper_word: int = 0, by_group: int = 0
) -> list[AttributeQuery]:
    """`n` training-side queries, then more until each shopper's word is in `per_shopper_word` of
    them, then `by_group` broad queries naming a product group; never a held-out one."""
    queries = generate_queries(articles, n, seed, held_out=False, shopper_share=TRAINING_SHOPPER_SHARE)
    if per_shopper_word:
        queries += vocabulary_queries(articles, queries, per_shopper_word, seed)
    if by_group:
        queries += group_queries(articles, by_group, {query.text for query in queries}, seed)
    assert not any(map(is_held_out, queries)), "a held-out query reached the training set"
    return queries


def vocabulary_queries(
    articles: Sequence[Article], queries: Sequence[AttributeQuery], minimum: int, seed: int
) -> list[AttributeQuery]:
    """New training-side queries in shoppers' words, each using a word that `queries` (and those
    drawn before it) use fewer than `minimum` times; words no article can produce stay short."""
    counts = Counter(word for query in queries for word in shopper_words_of(query))
    short = {word for words in SHOPPER_WORDS.values() for word in words if counts[word] < minimum}
    seen = {query.text for query in queries}
    rng = random.Random(seed + 1)
    added: list[AttributeQuery] = []
    fruitless = 0
    while short and fruitless < COVERAGE_PATIENCE:
        query = query_from(rng.choice(articles), rng, shopper_share=1.0)
        words = shopper_words_of(query)
        if query.text in seen or is_held_out(query) or not short.intersection(words):
            fruitless += 1
            continue
        fruitless = 0
        seen.add(query.text)
        added.append(query)
        for word in words:
            counts[word] += 1
            if counts[word] >= minimum:
                short.discard(word)
    return added


def group_queries(articles: Sequence[Article], n: int, taken: set[str], seed: int) -> list[AttributeQuery]:
    """Up to `n` training-side broad queries ("navy upper body garment"), none of whose text is in `taken`.

    Without them the model only ever sees a garment noun, and scores a query naming a product
    group near 0 for every article, which leaves nothing for the behaviour boost to reorder.
    """
    return generate_queries(
        articles, n, seed + 2, held_out=False, shopper_share=TRAINING_SHOPPER_SHARE, by_group=True, exclude=taken
    )


def _extras(pool: Sequence[Article], count: int, taken: dict[str, Article], rng: random.Random) -> list[Article]:
    """Up to `count` random articles of `pool` not in `taken`."""
    picked: list[Article] = []
    for _ in range(4 * count):  # a few retries: pools are large, collisions rare
        if len(picked) == count or not pool:
            break
        article = pool[rng.randrange(len(pool))]
        if article.article_id not in taken:
            taken[article.article_id] = article
            picked.append(article)
    return picked


def training_groups(
    encoder: Any,
    catalogue: Sequence[Article],
    sample: EmbeddedSample,
    n_queries: int,
    seed: int,
    counts: CandidateCounts = CandidateCounts(),
    per_shopper_word: int = 0,
    by_group: int = 0,
) -> list[QueryGroup]:
    """One group per training query, its candidates labelled grade / max_grade.

    Queries are drawn from the sample, so each has its full match among the nearest passages;
    near misses and random articles come from the whole catalogue.
    """
    queries = training_queries(sample.articles, n_queries, seed, per_shopper_word, by_group)
    nearest = sample.nearest(embed(encoder, [query.text for query in queries], "query"), counts.nearest)
    nouns = by_noun(catalogue)
    groups_of: dict[str, list[Article]] = {}
    for article in catalogue:
        groups_of.setdefault(group_phrase(article.product_group), []).append(article)
    rng = random.Random(seed)
    groups = []
    for query, rows in zip(queries, nearest, strict=True):
        taken = {sample.articles[i].article_id: sample.articles[i] for i in rows}
        _extras((groups_of if query.by_group else nouns).get(query.noun, ()), counts.same_noun, taken, rng)
        _extras(catalogue, counts.random, taken, rng)
        pairs = tuple(
            Pair(query.text, article.text(), query.grade(article) / query.max_grade, article.article_id)
            for article in taken.values()
        )
        groups.append(QueryGroup(query, pairs))
    return groups


def held_out_queries(encoder: Any, sample: EmbeddedSample, n: int, seed: int, candidates: int) -> list[HeldOutQuery]:
    """Held-out queries over the sample, each with its top `candidates` by cosine, for the sanity check."""
    graded = list(graded_queries(sample.articles, n, seed, held_out=True))
    assert all(is_held_out(query) for query, _ in graded)
    nearest = sample.nearest(embed(encoder, [query.text for query, _ in graded], "query"), candidates)
    return [
        HeldOutQuery(query, grades, tuple(sample.articles[i] for i in rows))
        for (query, grades), rows in zip(graded, nearest, strict=True)
    ]
