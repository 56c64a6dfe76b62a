"""Template explanations: the signals of an answer, and sentences that say nothing else."""

from __future__ import annotations

import pytest

from atelier.offline.catalog import vocabulary
from atelier.serving.shopper_words import AUDIENCE_OF_INDEX_GROUP
from fashion.v1 import article_pb2, explanation_pb2
from fashion.v1 import ranker_service_pb2 as ranker
from fashion.v1 import search_service_pb2 as pb
from services.search.explanations import explain, explain_top, query_signals

Kind = explanation_pb2.ExplanationSignalKind
JEANS = article_pb2.Article(
    article_id="0108775015",
    name="Slim Jeans",
    product_type="Trousers",
    product_group="Garment Lower body",
    colour="Dark Blue",
    department="Jeans",
    index_group="Ladieswear",
    garment_group="Trousers Denim",
)
FIELDS = {field.name: value for field, value in JEANS.ListFields()}


def _kinds(explanation: explanation_pb2.Explanation) -> list[int]:
    return [signal.kind for signal in explanation.signals]


@pytest.mark.parametrize(
    ("query", "matched"),
    [
        ("dark blue trousers", {"colour": ("dark blue",), "product_type": ("trousers",)}),
        (
            "women's navy slim pants",
            {"colour": ("navy",), "product_type": ("pants",), "name": ("slim",), "index_group": ("women's",)},
        ),
        ("ladies jeans", {"name": ("jeans",), "index_group": ("ladies",)}),
        ("navy blue jumper", {"colour": ("navy blue",)}),  # one match, not "navy" and then "blue"
        ("red summer dress", {}),
        ("bluejeans", {}),  # words, not substrings
    ],
)
def test_query_attributes_are_the_articles_values_the_query_names(query: str, matched: dict) -> None:
    signals = query_signals(query, FIELDS)
    assert {signal.field: signal.words for signal in signals} == matched
    assert all(signal.value == FIELDS[signal.field] and signal.boost == 1.0 for signal in signals)


def test_an_unpersonalised_result_is_explained_by_the_query_alone() -> None:
    explanation = explain(pb.SearchResult(article=JEANS), "navy pants", photo=False, item=None).result.explanation
    assert explanation.source == explanation_pb2.EXPLANATION_SOURCE_TEMPLATE
    assert explanation.text == 'Dark blue trousers, matching "navy" and "pants" in your search.'
    assert _kinds(explanation) == [Kind.EXPLANATION_SIGNAL_KIND_QUERY_ATTRIBUTE] * 2


def test_the_rankers_signals_come_first_strongest_first() -> None:
    item = ranker.RankedItem(
        personal_boost=1.2,
        personal_signal=ranker.PERSONAL_SIGNAL_CATEGORY_AFFINITY,
        popularity_boost=1.3,
        trending_window="24h",
        trending_clicks=7,
    )
    explanation = explain(pb.SearchResult(article=JEANS), "jeans", photo=False, item=item).result.explanation
    assert _kinds(explanation) == [
        Kind.EXPLANATION_SIGNAL_KIND_TRENDING,
        Kind.EXPLANATION_SIGNAL_KIND_CATEGORY_AFFINITY,
        Kind.EXPLANATION_SIGNAL_KIND_QUERY_ATTRIBUTE,
    ]
    trending, affinity, _ = explanation.signals
    assert (trending.field, trending.value, trending.boost) == ("24h", "7.0", pytest.approx(1.3))
    assert (affinity.field, affinity.value) == ("category", "Trousers")
    assert explanation.text == (
        'Dark blue trousers, matching "jeans" in your search. Popular with shoppers today. '
        "You have been looking at trousers lately."
    )


def test_a_recent_click_and_a_photo() -> None:
    item = ranker.RankedItem(
        personal_boost=1.5, personal_signal=ranker.PERSONAL_SIGNAL_RECENT_CLICK, popularity_boost=1
    )
    explanation = explain(pb.SearchResult(article=JEANS), "", photo=True, item=item).result.explanation
    assert _kinds(explanation) == [
        Kind.EXPLANATION_SIGNAL_KIND_RECENT_CLICK,
        Kind.EXPLANATION_SIGNAL_KIND_PHOTO_SIMILARITY,
    ]
    assert (
        explanation.text
        == "Dark blue trousers. You looked at this recently. It looks like the photo you searched with."
    )


def test_nothing_matched_says_close_to_the_search_and_no_more() -> None:
    explanation = explain(
        pb.SearchResult(article=JEANS), "something for a wedding", photo=False, item=None
    ).result.explanation
    assert explanation.text == "Dark blue trousers, close to your search." and not explanation.signals


def test_only_the_top_n_are_explained() -> None:
    results = [pb.SearchResult(article=JEANS) for _ in range(4)]
    explain_top(results, 2, "jeans", False, {})
    assert [result.HasField("explanation") for result in results] == [True, True, False, False]


def test_every_index_group_of_the_catalogue_has_an_audience_word() -> None:
    groups = {vocabulary.LADIESWEAR, vocabulary.DIVIDED, vocabulary.MENSWEAR, vocabulary.CHILDREN, vocabulary.SPORT}
    assert set(AUDIENCE_OF_INDEX_GROUP) == groups


def test_the_facts_hold_the_articles_words_and_the_answers_reasons_only() -> None:
    item = ranker.RankedItem(
        personal_boost=1.5,
        personal_signal=ranker.PERSONAL_SIGNAL_RECENT_CLICK,
        popularity_boost=1.2,
        trending_window="7d",
        trending_clicks=3,
    )
    explained = explain(pb.SearchResult(article=JEANS), "navy pants", photo=False, item=item)
    assert explained.facts() == (
        f"Article: dark blue trousers ({JEANS.name}, women's).\n"
        "Reasons: you looked at it recently; it is popular with shoppers this week; "
        'it matches "navy" and "pants" from your search.'
    )
    assert (
        explain(pb.SearchResult(article=JEANS), "", photo=True, item=None)
        .facts()
        .endswith("Reasons: it looks like your photo.")
    )
    assert (
        explain(pb.SearchResult(article=JEANS), "a wedding", photo=False, item=None)
        .facts()
        .endswith("Reasons: it is close to your search.")
    )
