"""Whether a sentence about an article claims only what the article is: the check a generated
explanation must pass before a shopper reads it.

A sentence fails when it names a colour, a garment, a material or an audience that the article's
own fields do not have (in the catalogue's words or a shopper's: "navy" is right for Dark Blue,
"pants" for Trousers, "ladies" for Ladieswear), or when it claims what no article field holds at
all: a price, a discount, a size, stock or delivery. The words that count as a colour, a garment
and an audience come from the catalogue itself (its known filter values) and the shopper
vocabulary; materials from a fixed list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from atelier.serving.articles import FIELDS
from atelier.serving.shopper_words import AUDIENCE_OF_INDEX_GROUP, SHOPPER_WORDS

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
    extra = [word for value in own for word in SHOPPER_WORDS.get(value.lower(), ())]
    audience = AUDIENCE_OF_INDEX_GROUP.get(fields.get("index_group", ""), "")
    if audience:
        extra += [audience, *SHOPPER_WORDS.get(audience, ()), *SINGULAR_AUDIENCE.get(audience, ())]
    return _words(" ".join(own + extra))


def problems(text: str, fields: Mapping[str, str], vocabulary: Vocabulary) -> list[str]:
    """What `text` claims that the article (its `fields`) is not; empty when it claims nothing else."""
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
    return found
