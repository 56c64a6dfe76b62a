"""Whether a sentence about an article claims only what the article is: the check a generated
explanation must pass before a shopper reads it.

A sentence fails when it names a colour, a garment, a material or an audience that the article's
own fields do not have (in the catalogue's words or a shopper's: "navy" is right for Dark Blue,
"pants" for Trousers, "ladies" for Ladieswear), or when it claims what no article field holds at
all: a price, a discount, a size, stock or delivery. The words that count as a colour, a garment
and an audience come from the catalogue itself (its known filter values) and the shopper
vocabulary; materials from a fixed list. It fails too when it gives a reason the answer does not have:
the shopper's own history without a recent click or category affinity, popularity without a trending
window, a photo without one searched with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from atelier.serving.articles import FIELDS
from atelier.serving.shopper_words import AUDIENCE_OF_INDEX_GROUP, SHOPPER_WORDS
from fashion.v1 import explanation_pb2

Kind = explanation_pb2.ExplanationSignalKind

MATERIALS = frozenset(
    {
        "denim", "cotton", "wool", "linen", "silk", "leather", "suede", "cashmere", "polyester", "viscose",
        "jersey", "satin", "velvet", "lace", "fleece", "corduroy", "chiffon", "nylon", "mohair", "tweed",
    }
)  # fmt: skip
AUDIENCES = frozenset(
    {"women", "woman", "ladies", "lady", "men", "man", "kids", "kid", "children", "child", "baby", "girls", "boys"}
)
SINGULAR_AUDIENCE = {"women's": ("woman", "lady"), "men's": ("man",), "kids'": ("kid", "child")}
# Claims no article field can back: prices, discounts, sizes, stock, delivery.
UNBACKED = re.compile(
    r"(\d+\s*%|[£$€]\s*\d|\b(discount(ed)?|on sale|sale price|price[ds]?|cheap(er|est)?|bargain|deal|"
    r"size[sd]?|in stock|sold out|free (delivery|shipping|returns)|limited time)\b)",
    re.IGNORECASE,
)


# Reasons a sentence may give, and the signals that back each.
PERSONAL = re.compile(
    r"\b(you|you've|you have|you've been|you have been)\s+(recently\s+|already\s+|often\s+)?"
    r"(looked|viewed|clicked|browsed|liked|been looking|been browsing|checked out|seen)\b"
    r"|\b(recently viewed|your (recent|history|favou?rite|taste|style))\b",
    re.IGNORECASE,
)
POPULAR = re.compile(
    r"\b(popular|trending|best[- ]?sell\w*|in demand|hot right now|favou?rite (with|among))\b", re.IGNORECASE
)
PHOTO = re.compile(r"\b(photo|picture|image|snap)\b", re.IGNORECASE)
REASONS = (
    (
        "your history",
        PERSONAL,
        frozenset({Kind.EXPLANATION_SIGNAL_KIND_RECENT_CLICK, Kind.EXPLANATION_SIGNAL_KIND_CATEGORY_AFFINITY}),
    ),
    ("popularity", POPULAR, frozenset({Kind.EXPLANATION_SIGNAL_KIND_TRENDING})),
    ("a photo", PHOTO, frozenset({Kind.EXPLANATION_SIGNAL_KIND_PHOTO_SIMILARITY})),
)


@dataclass(frozen=True)
class Vocabulary:
    """The words that name a colour, a garment or an audience, lower case."""

    colours: frozenset[str]
    garments: frozenset[str]


def vocabulary(known_values: Mapping[str, Mapping[str, str]]) -> Vocabulary:
    """From the catalogue's known filter values (attribute -> {lower-cased value: value})."""

    def terms(attribute: str) -> set[str]:
        return {part.strip() for value in known_values.get(attribute, {}) for part in value.split("/") if part.strip()}

    colours = terms("colour")
    # "Dark Blue" is also "blue": the last word of a colour is its family.
    colours |= {colour.split()[-1] for colour in colours}
    garments = terms("product_type")
    for phrase, words in SHOPPER_WORDS.items():
        if phrase in colours:
            colours.update(words)
        if phrase in garments:
            garments.update(words)
    colours -= {"other", "unknown", "undefined", "transparent"}
    return Vocabulary(frozenset(colours), frozenset(garments))


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^a-z0-9/-]+", " ", text.lower().replace("'s", "")).split()) + " "


def _plural(word: str) -> Iterable[str]:
    yield word
    if word.endswith("s"):
        yield word[:-1]
    else:
        yield word + "s"


def article_text(fields: Mapping[str, str]) -> str:
    """Everything the article says of itself, with shoppers' words for it, as `_words` spells text."""
    own = [fields.get(field, "") for field in FIELDS]
    own += [part for value in own if "/" in value for part in value.split("/")]  # "Jumpsuit/Playsuit" is both
    extra = [word for value in own for word in SHOPPER_WORDS.get(value.lower(), ())]
    audience = AUDIENCE_OF_INDEX_GROUP.get(fields.get("index_group", ""), "")
    if audience:
        extra += [audience, *SHOPPER_WORDS.get(audience, ()), *SINGULAR_AUDIENCE.get(audience, ())]
    return _words(" ".join(own + extra))


def problems(
    text: str, fields: Mapping[str, str], vocabulary: Vocabulary, signals: Iterable[int] | None = None
) -> list[str]:
    """What `text` claims that the article (its `fields`) is not, or (given the answer's `signals`, their
    kinds) a reason the answer does not have; empty when it claims nothing else."""
    said, own = _words(text), article_text(fields)
    found = []
    for kind, words in (("colour", vocabulary.colours), ("garment", vocabulary.garments), ("material", MATERIALS)):
        for word in sorted(words, key=len, reverse=True):
            phrase = _words(word).strip()
            if phrase and f" {phrase} " in said and not any(f" {form} " in own for form in _plural(phrase)):
                found.append(f'{kind} "{phrase}"')
                said = said.replace(f" {phrase} ", " ")
    for word in sorted(AUDIENCES):
        if f" {word} " in said and f" {word} " not in own:
            found.append(f'audience "{word}"')
    found += [f'claim "{match.group(0).strip()}"' for match in UNBACKED.finditer(text)]
    if signals is not None:
        kinds = set(signals)
        for reason, pattern, backing in REASONS:
            match = pattern.search(text)
            if match and not kinds & backing:
                found.append(f'reason "{match.group(0).strip()}" ({reason}) without its signal')
    return found


def mentions(text: str, kind: int, words: Iterable[str] = ()) -> bool:
    """Whether `text` gives the reason of a signal of `kind` (`words`: a query attribute's words)."""
    for _, pattern, backing in REASONS:
        if kind in backing:
            return pattern.search(text) is not None
    said = _words(text)
    return any(f" {form} " in said for word in words for form in _plural(_words(word).strip()))
