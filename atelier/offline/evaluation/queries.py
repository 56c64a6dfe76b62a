"""Attribute queries over a catalogue, with graded relevance and a fixed held-out split.

A query is what a shopper types: "women's dark blue slim fit jeans" = a garment noun plus
some of colour, fit/style modifier and audience. Half the queries use shoppers' words where
they differ from the catalogue's ("navy" for Dark Blue, "pants", "mens", "gray"): the
catalogue's own words alone make retrieval look better than it is for real queries.

Each part is a constraint an article meets or not; an article's grade is 0 when the noun does
not match, else 1 + the other constraints it meets. So the best answers meet all of them and
near misses still earn partial credit.

The split is by (noun, colour family): a query is held out when that pair hashes into the
held-out fifth, so the reranker never trains on a noun/colour combination it is evaluated on,
whatever the seed. Training and evaluation draw from the same generator and filter on
`is_held_out`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache

from atelier.offline.catalog.schema import Article
from atelier.offline.catalog.vocabulary import COLOURS_BY_NAME, PRODUCT_TYPES
from atelier.serving.shopper_words import AUDIENCE_OF_INDEX_GROUP, SHOPPER_WORDS

HELD_OUT_BUCKETS = 5  # one pair in five is held out

# An audience word -> the index groups it names ("women's": Ladieswear and Divided).
AUDIENCES: Mapping[str, frozenset[str]] = {
    word: frozenset(group for group, audience in AUDIENCE_OF_INDEX_GROUP.items() if audience == word)
    for word in dict.fromkeys(AUDIENCE_OF_INDEX_GROUP.values())
}
SHOPPER_SHARE = 0.5


@cache
def _modifiers() -> tuple[str, ...]:
    """Every fit/style word of the vocabulary, lower case, longest first ("slim fit" before "slim")."""
    names = {
        modifier.name.lower()
        for product_type in PRODUCT_TYPES
        for style in product_type.styles
        for modifier in style.modifiers
        if modifier.name
    }
    return tuple(sorted(names, key=lambda name: (-len(name), name)))


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9'-]+", " ", text.lower()).strip() + " "


def noun_of(article: Article) -> str:
    """The garment noun a shopper would type: the last word of the name ("jeans", "jumper")."""
    words = _words(article.name).split()
    return words[-1] if words else article.product_type.lower()


def _type_terms(article: Article) -> tuple[str, ...]:
    return tuple(term.strip() for term in article.product_type.lower().split("/") if term.strip())


def group_phrase(product_group: str) -> str:
    """ "Garment Lower body" -> "lower body garment"; "Accessories" -> "accessories"."""
    words = product_group.lower().split()
    if words and words[0] == "garment":
        words = [*words[1:], "garment"]
    return " ".join(words)


def colour_family(colour: str) -> str:
    known = COLOURS_BY_NAME.get(colour)
    return known.family if known else colour.lower()


@dataclass(frozen=True)
class AttributeQuery:
    noun: str
    colour: str = ""  # a colour_group_name ("Dark Blue"), or a family word ("blue") when `family`
    colour_is_family: bool = False
    modifier: str = ""
    audience: str = ""
    wording: str = ""  # the typed text when it uses shoppers' words
    # `noun` names a product group ("lower body garment"), met by every article of the group.
    by_group: bool = False

    @property
    def text(self) -> str:
        return self.wording or " ".join(self.parts())

    def parts(self) -> tuple[str, ...]:
        """The catalogue's words for audience, colour, modifier and noun, in typing order."""
        return tuple(part for part in (self.audience, self.colour.lower(), self.modifier, self.noun) if part)

    @property
    def family(self) -> str:
        if not self.colour:
            return ""
        return self.colour if self.colour_is_family else colour_family(self.colour)

    @property
    def max_grade(self) -> int:
        return 1 + sum(1 for part in (self.colour, self.modifier, self.audience) if part)

    def grade(self, article: Article) -> int:
        if self.by_group:
            if self.noun != group_phrase(article.product_group):
                return 0
        elif self.noun != noun_of(article) and self.noun not in _type_terms(article):
            return 0
        grade = 1
        if self.colour:
            family = colour_family(article.colour)
            grade += family == self.colour if self.colour_is_family else article.colour == self.colour
        if self.modifier:
            grade += f" {self.modifier} " in _words(article.name)
        if self.audience:
            grade += article.index_group in AUDIENCES[self.audience]
        return grade


def shopper_words_of(query: AttributeQuery) -> tuple[str, ...]:
    """The shoppers' words a query is typed with ("navy", "pants"), in the order of its parts."""
    if not query.wording:
        return ()
    typed = _words(query.wording)
    used = []
    for part in query.parts():
        # Longest first: "navy blue" is not "navy".
        for word in sorted(SHOPPER_WORDS.get(part, ()), key=len, reverse=True):
            if f" {word} " in typed:
                used.append(word)
                break
    return tuple(used)


def is_held_out(query: AttributeQuery) -> bool:
    key = f"{query.noun}|{query.family}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % HELD_OUT_BUCKETS == 0


def _audience_of(article: Article) -> str:
    return next((word for word, groups in AUDIENCES.items() if article.index_group in groups), "")


def query_from(article: Article, rng: random.Random, shopper_share: float = SHOPPER_SHARE) -> AttributeQuery:
    """A query this article fully answers: its noun plus a random choice of its other attributes.

    `shopper_share` of them are typed in shoppers' words where those differ from the catalogue's.
    """
    while True:
        colour, is_family = "", False
        if rng.random() < 0.8:
            is_family = rng.random() < 0.5
            colour = colour_family(article.colour) if is_family else article.colour
        words, noun = _words(article.name), noun_of(article)
        modifiers = [m for m in _modifiers() if f" {m} " in words and m != noun]
        modifier = rng.choice(modifiers) if modifiers and rng.random() < 0.5 else ""
        audience = _audience_of(article) if rng.random() < 0.4 else ""
        query = AttributeQuery(noun, colour, is_family, modifier, audience)
        if query.max_grade >= 2:
            return _in_shoppers_words(query, rng) if rng.random() < shopper_share else query


def group_query_from(article: Article, rng: random.Random, shopper_share: float = SHOPPER_SHARE) -> AttributeQuery:
    """A broad query this article fully answers: its product group ("lower body garment") with
    its colour (specific or family) and, sometimes, its audience."""
    is_family = rng.random() < 0.5
    colour = colour_family(article.colour) if is_family else article.colour
    audience = _audience_of(article) if rng.random() < 0.3 else ""
    query = AttributeQuery(group_phrase(article.product_group), colour, is_family, "", audience, by_group=True)
    return _in_shoppers_words(query, rng) if rng.random() < shopper_share else query


def _in_shoppers_words(query: AttributeQuery, rng: random.Random) -> AttributeQuery:
    words = [rng.choice(SHOPPER_WORDS[part]) if part in SHOPPER_WORDS else part for part in query.parts()]
    if words[0] == "for men":  # reads after the noun
        words = [*words[1:], words[0]]
    wording = " ".join(words)
    return query if wording == query.text else replace(query, wording=wording)


def generate_queries(
    articles: Sequence[Article],
    n: int,
    seed: int,
    held_out: bool | None = None,
    shopper_share: float = SHOPPER_SHARE,
    by_group: bool = False,
    exclude: Collection[str] = (),
) -> list[AttributeQuery]:
    """`n` distinct queries seeded from random articles; `held_out` picks one side of the split.

    `by_group`: broad queries naming the article's product group (`group_query_from`) instead of
    its garment noun; a query whose text is in `exclude` is skipped.
    """
    make = group_query_from if by_group else query_from
    rng = random.Random(seed)
    queries: dict[str, AttributeQuery] = {}
    attempts = 0
    while len(queries) < n and attempts < 50 * n:
        attempts += 1
        query = make(rng.choice(articles), rng, shopper_share)
        if (held_out is None or is_held_out(query) == held_out) and query.text not in exclude:
            queries.setdefault(query.text, query)
    return list(queries.values())


def grades(query: AttributeQuery, articles: Iterable[Article]) -> dict[str, int]:
    """article_id -> grade for every article of grade >= 1."""
    graded = {}
    for article in articles:
        grade = query.grade(article)
        if grade:
            graded[article.article_id] = grade
    return graded


def by_noun(articles: Iterable[Article]) -> dict[str, list[Article]]:
    """Articles indexed by every noun that can match them, so grading a query scans only those."""
    index: dict[str, list[Article]] = {}
    for article in articles:
        for noun in {noun_of(article), *_type_terms(article)}:
            index.setdefault(noun, []).append(article)
    return index


def graded_queries(
    articles: Sequence[Article], n: int, seed: int, held_out: bool | None
) -> Iterator[tuple[AttributeQuery, dict[str, int]]]:
    index = by_noun(articles)
    for query in generate_queries(articles, n, seed, held_out):
        yield query, grades(query, index.get(query.noun, ()))
