"""The grounding check of generated explanations, against hand-written true and false sentences."""

from __future__ import annotations

import pytest

from fashion.v1 import explanation_pb2
from services.search.grounding import mentions, problems, vocabulary

Kind = explanation_pb2.ExplanationSignalKind

KNOWN = {
    "colour": {v.lower(): v for v in ("Black", "Dark Blue", "Light Pink", "Red", "Off White", "Grey", "Other")},
    "product_type": {v.lower(): v for v in ("Trousers", "Dress", "Sweater", "T-shirt", "Jacket", "Bag")},
}
VOCABULARY = vocabulary(KNOWN)
JEANS = {
    "name": "Slim Jeans",
    "product_type": "Trousers",
    "product_group": "Garment Lower body",
    "colour": "Dark Blue",
    "department": "Jeans",
    "index_group": "Ladieswear",
    "garment_group": "Trousers Denim",
    "description": "Five-pocket jeans in washed stretch denim with a regular waist.",
}


def test_the_vocabulary_comes_from_the_catalogue_and_the_shopper_words() -> None:
    assert {"black", "dark blue", "blue", "navy", "pink", "white", "off white", "cream"} <= VOCABULARY.colours
    assert "other" not in VOCABULARY.colours
    assert {"trousers", "pants", "dress", "t-shirt", "tee", "bag"} <= VOCABULARY.garments


@pytest.mark.parametrize(
    "sentence",
    [
        "Dark blue trousers, matching your search for navy pants.",
        "These slim jeans in stretch denim are a match for what you searched.",
        "A pair of blue trousers for women, popular with shoppers today.",
        "Ladies' jeans you looked at recently.",
        "You have been looking at trousers lately, and these are navy.",
        "A great pick for you.",
    ],
)
def test_a_sentence_true_of_the_article_passes(sentence: str) -> None:
    assert problems(sentence, JEANS, VOCABULARY) == []


@pytest.mark.parametrize(
    ("sentence", "found"),
    [
        ("Black trousers, just what you searched for.", ['colour "black"']),
        ("A red dress for the summer.", ['colour "red"', 'garment "dress"']),
        ("Soft wool trousers for cold days.", ['material "wool"']),
        ("Men's jeans in dark blue.", ['audience "men"']),
        ("Dark blue jeans, now 30% off.", ['claim "30%"']),
        ("Navy trousers on sale while stocks last.", ['claim "on sale"']),
        ("Available in size 38 and in stock.", ['claim "size"', 'claim "in stock"']),
        ("A light pink sweater and matching trousers.", ['colour "light pink"', 'garment "sweater"']),
    ],
)
def test_a_sentence_claiming_what_the_article_is_not_fails_naming_it(sentence: str, found: list[str]) -> None:
    assert problems(sentence, JEANS, VOCABULARY) == found


def test_a_value_of_two_names_is_either() -> None:
    playsuit = {"name": "Linen Playsuit", "product_type": "Jumpsuit/Playsuit", "colour": "Black"}
    known = {"product_type": {"jumpsuit/playsuit": "Jumpsuit/Playsuit", "dress": "Dress"}, "colour": {"black": "Black"}}
    assert problems("This black jumpsuit matches your search.", playsuit, vocabulary(known)) == []
    assert problems("This black dress matches your search.", playsuit, vocabulary(known)) == ['garment "dress"']


def test_off_white_is_white_and_grey_is_gray() -> None:
    shirt = {"name": "Linen Shirt", "product_type": "Shirt", "colour": "Off White", "index_group": "Menswear"}
    assert problems("An off white linen shirt for men, in white.", shirt, VOCABULARY) == []
    hoodie = {"name": "Hoodie", "product_type": "Hoodie", "colour": "Grey", "index_group": "Divided"}
    assert problems("A gray hoodie for women.", hoodie, VOCABULARY) == []
    assert problems("A black hoodie for kids.", hoodie, VOCABULARY) == ['colour "black"', 'audience "kids"']


QUERY, RECENT, AFFINITY, TRENDING, PHOTO = (
    Kind.EXPLANATION_SIGNAL_KIND_QUERY_ATTRIBUTE,
    Kind.EXPLANATION_SIGNAL_KIND_RECENT_CLICK,
    Kind.EXPLANATION_SIGNAL_KIND_CATEGORY_AFFINITY,
    Kind.EXPLANATION_SIGNAL_KIND_TRENDING,
    Kind.EXPLANATION_SIGNAL_KIND_PHOTO_SIMILARITY,
)


@pytest.mark.parametrize(
    ("sentence", "signals", "found"),
    [
        ("These trousers match the navy pants you searched for.", [QUERY], []),
        ("You looked at these trousers recently.", [RECENT], []),
        ("You have been looking at trousers lately.", [AFFINITY], []),
        ("Trousers popular with shoppers this week.", [TRENDING], []),
        ("Trousers like the photo you searched with.", [PHOTO], []),
        ("You looked at these trousers recently.", [QUERY], ['reason "You looked" (your history) without its signal']),
        ("Popular navy trousers.", [QUERY, RECENT], ['reason "Popular" (popularity) without its signal']),
        ("Trousers like your photo.", [QUERY], ['reason "photo" (a photo) without its signal']),
    ],
)
def test_a_reason_the_answer_does_not_have_fails(sentence: str, signals: list[int], found: list[str]) -> None:
    assert problems(sentence, JEANS, VOCABULARY, signals) == found


@pytest.mark.parametrize(
    ("sentence", "kind", "words", "said"),
    [
        ("You looked at them recently.", RECENT, (), True),
        ("Navy trousers for you.", RECENT, (), False),
        ("A best-seller this week.", TRENDING, (), True),
        ("These match the navy pants you searched for.", QUERY, ("navy", "pants"), True),
        ("These match your search.", QUERY, ("navy", "pants"), False),
        ("Jeans like the picture you sent.", PHOTO, (), True),
    ],
)
def test_mentions_finds_the_reason_of_a_signal(sentence: str, kind: int, words: tuple[str, ...], said: bool) -> None:
    assert mentions(sentence, kind, words) is said
