"""Why each of an answer's top results is there: its signals, a sentence per signal (template mode), and
the facts a language model may say of it (llm mode, services/search/generated_explanations.py).

The signals are the answer's own: the article's attributes that the query names (in the catalogue's
words or in shoppers', "navy" for Dark Blue), the photo searched with, and what the ranker boosted
the result by: a recent click or affinity for its category, and the trending window that added most
to its popularity. The ranker's signals come first, strongest first, then the query's. The sentences
say nothing that is not a signal or the article's own field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from atelier.serving.articles import category
from atelier.serving.shopper_words import AUDIENCE_OF_INDEX_GROUP, SHOPPER_WORDS
from fashion.v1 import explanation_pb2, ranker_service_pb2, search_service_pb2

Kind = explanation_pb2.ExplanationSignalKind
QUERY_ATTRIBUTE = Kind.EXPLANATION_SIGNAL_KIND_QUERY_ATTRIBUTE
PHOTO = Kind.EXPLANATION_SIGNAL_KIND_PHOTO_SIMILARITY
# The article fields a query may name, in the order a sentence lists them.
QUERY_FIELDS = ("colour", "product_type", "name", "index_group", "product_group", "garment_group", "department")
WINDOWS = {"1h": "in the last hour", "24h": "today", "7d": "this week"}
# Words of a product name that say nothing about the article.
_FILLER = frozenset({"and", "with", "in", "of", "the", "a", "for", "&"})


@dataclass(frozen=True)
class Signal:
    kind: int
    field: str = ""
    value: str = ""
    boost: float = 1.0
    words: tuple[str, ...] = ()  # the query's words it matched (query attributes)

    def message(self) -> explanation_pb2.ExplanationSignal:
        return explanation_pb2.ExplanationSignal(kind=self.kind, field=self.field, value=self.value, boost=self.boost)


def _words(text: str) -> str:
    """Lower case, one space between words, a space at each end: phrases match on word boundaries."""
    return " " + " ".join(re.sub(r"[^a-z0-9'/-]+", " ", text.lower()).split()) + " "


def _phrases(field: str, value: str) -> list[str]:
    """What a query may say for an article's value of `field`: its words, and shoppers' words for them."""
    if field == "index_group":
        audience = AUDIENCE_OF_INDEX_GROUP.get(value)
        catalogue = [audience] if audience else []
    elif field == "name":
        catalogue = [word for word in _words(value).split() if word not in _FILLER and len(word) > 2]
    elif field == "product_group":
        catalogue = [value.lower().removeprefix("garment ").strip()]
    else:
        catalogue = [part.strip() for part in value.lower().split("/") if part.strip()]
    return [phrase for each in catalogue for phrase in (each, *SHOPPER_WORDS.get(each, ()))]


def query_signals(query: str, fields: Mapping[str, str]) -> list[Signal]:
    """The article's attributes the query names, each with the query's words for it."""
    text = _words(query)
    signals = []
    for field in QUERY_FIELDS:
        value = fields.get(field, "")
        matched = []
        # Longest first, and a match uses its words up: "navy blue" is one match, not "navy" then "blue".
        for phrase in sorted(set(_phrases(field, value)) if value else (), key=lambda p: (-len(p), p)):
            if f" {phrase} " in text:
                matched.append(phrase)
                text = text.replace(f" {phrase} ", " | ", 1)
        if matched:
            signals.append(Signal(QUERY_ATTRIBUTE, field, value, 1.0, tuple(matched)))
    return signals


def ranker_signals(item: ranker_service_pb2.RankedItem | None, fields: Mapping[str, str]) -> list[Signal]:
    """What the ranker boosted the result by, strongest first (none for an unpersonalised answer)."""
    if item is None:
        return []
    signals = []
    if item.personal_signal == ranker_service_pb2.PERSONAL_SIGNAL_RECENT_CLICK:
        signals.append(Signal(Kind.EXPLANATION_SIGNAL_KIND_RECENT_CLICK, boost=item.personal_boost))
    elif item.personal_signal == ranker_service_pb2.PERSONAL_SIGNAL_CATEGORY_AFFINITY:
        signals.append(
            Signal(Kind.EXPLANATION_SIGNAL_KIND_CATEGORY_AFFINITY, "category", category(fields), item.personal_boost)
        )
    if item.trending_window and item.popularity_boost > 1.0:
        signals.append(
            Signal(
                Kind.EXPLANATION_SIGNAL_KIND_TRENDING,
                item.trending_window,
                f"{item.trending_clicks:.1f}",
                item.popularity_boost,
            )
        )
    return sorted(signals, key=lambda signal: signal.boost, reverse=True)


def _listed(words: Sequence[str]) -> str:
    quoted = [f'"{word}"' for word in words]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def sentence(signal: Signal) -> str:
    """The template's sentence for one signal, in plain shopper language."""
    kind = signal.kind
    if kind == Kind.EXPLANATION_SIGNAL_KIND_RECENT_CLICK:
        return "You looked at this recently."
    if kind == Kind.EXPLANATION_SIGNAL_KIND_CATEGORY_AFFINITY:
        return f"You have been looking at {signal.value.lower()} lately."
    if kind == Kind.EXPLANATION_SIGNAL_KIND_TRENDING:
        return f"Popular with shoppers {WINDOWS.get(signal.field, 'lately')}."
    if kind == PHOTO:
        return "It looks like the photo you searched with."
    raise ValueError(f"no sentence for signal kind {kind}")


def _described(fields: Mapping[str, str]) -> str:
    """ "Dark blue trousers": the article's colour and type, in its own words."""
    words = " ".join(part for part in (fields.get("colour", ""), fields.get("product_type", "")) if part).lower()
    return words[:1].upper() + words[1:] if words else fields.get("name", "")


def template_text(signals: Sequence[Signal], fields: Mapping[str, str]) -> str:
    """The article in a few words, what it matched of the query, then the other signals' sentences."""
    article = _described(fields)
    words = [word for signal in signals if signal.kind == QUERY_ATTRIBUTE for word in signal.words]
    if words:
        lead = f"{article}, matching {_listed(words)} in your search."
    elif any(signal.kind == PHOTO for signal in signals):
        lead = f"{article}."
    else:
        lead = f"{article}, close to your search."
    return " ".join([lead, *(sentence(signal) for signal in signals if signal.kind != QUERY_ATTRIBUTE)])


def _reason(signal: Signal) -> str:
    """A signal as the facts given to a language model say it, to the shopper: words it can copy."""
    kind = signal.kind
    if kind == QUERY_ATTRIBUTE:
        return f"it matches {_listed(signal.words)} from your search"
    if kind == PHOTO:
        return "it looks like your photo"
    if kind == Kind.EXPLANATION_SIGNAL_KIND_RECENT_CLICK:
        return "you looked at it recently"
    if kind == Kind.EXPLANATION_SIGNAL_KIND_CATEGORY_AFFINITY:
        return f"you have been looking at {signal.value.lower()} lately"
    if kind == Kind.EXPLANATION_SIGNAL_KIND_TRENDING:
        return f"it is popular with shoppers {WINDOWS.get(signal.field, 'lately')}"
    raise ValueError(f"no reason for signal kind {kind}")


def facts(signals: Sequence[Signal], fields: Mapping[str, str]) -> str:
    """All a generated sentence may say of the article: its own words and the answer's reasons, the ranker's
    first (what moved it, strongest first), then the query's words merged into one."""
    audience = AUDIENCE_OF_INDEX_GROUP.get(fields.get("index_group", ""), fields.get("index_group", "")).lower()
    details = ", ".join(part for part in (fields.get("name", ""), audience) if part)
    article = _described(fields).lower() + (f" ({details})" if details else "")
    reasons = [_reason(signal) for signal in signals if signal.kind != QUERY_ATTRIBUTE]
    words = [word for signal in signals if signal.kind == QUERY_ATTRIBUTE for word in signal.words]
    if words:
        reasons.append(_reason(Signal(QUERY_ATTRIBUTE, words=tuple(words))))
    return f"Article: {article}.\nReasons: {'; '.join(reasons) or 'it is close to your search'}."


@dataclass(frozen=True)
class Explained:
    """A result whose explanation was set: the signals and article fields it rests on."""

    result: search_service_pb2.SearchResult
    signals: tuple[Signal, ...]
    fields: Mapping[str, str]

    def facts(self) -> str:
        return facts(self.signals, self.fields)


def explain(
    result: search_service_pb2.SearchResult, query: str, photo: bool, item: ranker_service_pb2.RankedItem | None
) -> Explained:
    """Sets the template explanation of one result of an answer to `query` (with a photo or not)."""
    fields = {field.name: value for field, value in result.article.ListFields() if isinstance(value, str)}
    signals = ranker_signals(item, fields) + query_signals(query, fields)
    if photo:
        signals.append(Signal(PHOTO))
    result.explanation.CopyFrom(
        explanation_pb2.Explanation(
            text=template_text(signals, fields),
            signals=[signal.message() for signal in signals],
            source=explanation_pb2.EXPLANATION_SOURCE_TEMPLATE,
        )
    )
    return Explained(result, tuple(signals), fields)


def explain_top(
    results: Sequence[search_service_pb2.SearchResult],
    n: int,
    query: str,
    photo: bool,
    ranked: Mapping[str, ranker_service_pb2.RankedItem],
) -> list[Explained]:
    """Sets the template explanation of the first `n` results."""
    return [explain(result, query, photo, ranked.get(result.article.article_id)) for result in results[:n]]
