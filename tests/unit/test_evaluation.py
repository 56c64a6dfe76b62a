"""Offline evaluation: metrics by hand, the query set and its split, simulated users, the report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from atelier.offline.catalog.hm_loader import iter_articles
from atelier.offline.catalog.schema import Article
from atelier.offline.catalog.synthetic import write_synthetic_catalog
from atelier.offline.evaluation import report
from atelier.offline.evaluation.client import Ranked
from atelier.offline.evaluation.metrics import ndcg_at_k, recall_at_k, reciprocal_rank
from atelier.offline.evaluation.queries import (
    AttributeQuery,
    generate_queries,
    grades,
    group_phrase,
    is_held_out,
    shopper_words_of,
)
from atelier.offline.evaluation.stages import ANN, PERSONALISED, RERANK, StageTable, lift, score
from atelier.offline.evaluation.users import simulate_users


def _article(article_id: str, name: str, product_type: str, colour: str, index_group: str = "Ladieswear") -> Article:
    return Article(article_id, name, product_type, "Garment Lower body", colour, "Dept", index_group, "Trousers")


def test_ndcg_by_hand() -> None:
    grades_ = {"a": 2, "b": 1}
    # ranked b, x, a: gains 1, 0, 3 at discounts 1, 1/log2(3), 1/2; ideal a, b: 3 + 1/log2(3)
    expected = (1 + 3 / 2) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(["b", "x", "a"], grades_, 10) == pytest.approx(expected)
    assert ndcg_at_k(["a", "b"], grades_, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x"], {}, 10) == 0.0


def test_recall_is_capped_by_k_and_mrr_finds_the_first_hit() -> None:
    relevant = {f"r{i}" for i in range(30)}
    assert recall_at_k([f"r{i}" for i in range(10)], relevant, 10) == 1.0
    assert recall_at_k(["r1", "x"], {"r1", "r2"}, 10) == 0.5
    assert reciprocal_rank(["x", "y", "r1"], {"r1"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"], {"r1"}) == 0.0


def test_a_query_naming_a_product_group_is_met_by_every_article_of_the_group() -> None:
    query = AttributeQuery("lower body garment", "black", colour_is_family=True, audience="men's", by_group=True)
    assert query.text == "men's black lower body garment" and query.max_grade == 3
    assert query.grade(_article("1", "Slim Fit Jeans", "Trousers", "Black", "Menswear")) == 3  # Garment Lower body
    assert query.grade(_article("2", "Pleated Skirt", "Skirt", "Black")) == 2  # women's
    upper = Article("3", "Basic Tee", "T-shirt", "Garment Upper body", "Black", "Dept", "Menswear", "Jersey")
    assert query.grade(upper) == 0
    # A garment-noun query is untouched: "garment" is no article's noun.
    assert AttributeQuery("lower body garment", "Black").grade(_article("4", "Jeans", "Trousers", "Black")) == 0


def test_grades_count_the_constraints_met_once_the_noun_matches() -> None:
    query = AttributeQuery("jeans", "Black", modifier="slim fit", audience="men's")
    assert query.max_grade == 4
    assert query.grade(_article("1", "Slim Fit Jeans", "Trousers", "Black", "Menswear")) == 4
    assert query.grade(_article("2", "Slim Fit Jeans", "Trousers", "Black")) == 3  # women's
    assert query.grade(_article("3", "Wide Jeans", "Trousers", "Dark Blue")) == 1
    assert query.grade(_article("4", "Slim Fit Chinos", "Trousers", "Black", "Menswear")) == 0  # not jeans
    # a type term matches every article of the type; a family matches every shade
    trousers = AttributeQuery("trousers", "blue", colour_is_family=True)
    assert trousers.grade(_article("5", "Wide Jeans", "Trousers", "Dark Blue")) == 2
    assert grades(trousers, [_article("6", "Midi Skirt", "Skirt", "Blue")]) == {}


def test_the_split_is_by_noun_and_colour_family_and_never_overlaps() -> None:
    navy = AttributeQuery("dress", "Dark Blue")
    assert is_held_out(navy) == is_held_out(AttributeQuery("dress", "blue", colour_is_family=True, audience="kids'"))
    articles = [
        _article(str(i), name, kind, colour)
        for i, (name, kind, colour) in enumerate(
            (n, t, c)
            for n, t in (("Slim Jeans", "Trousers"), ("Wrap Dress", "Dress"), ("Jersey Top", "Top"), ("Cap", "Cap"))
            for c in ("Black", "White", "Dark Blue", "Light Pink", "Grey", "Dark Red", "Khaki green")
        )
    ]
    held_out = generate_queries(articles, 200, seed=1, held_out=True)
    training = generate_queries(articles, 200, seed=1, held_out=False)
    assert held_out and training
    assert all(is_held_out(q) for q in held_out) and not any(is_held_out(q) for q in training)
    assert {(q.noun, q.family) for q in held_out}.isdisjoint({(q.noun, q.family) for q in training})
    assert generate_queries(articles, 50, seed=3) == generate_queries(articles, 50, seed=3)


def test_shoppers_words_change_the_text_not_the_meaning() -> None:
    articles = [_article(str(i), "Slim Jeans", "Trousers", "Dark Blue", "Menswear") for i in range(5)]
    queries = generate_queries(articles, 40, seed=2)
    reworded = [q for q in queries if q.wording]
    assert reworded
    for query in reworded:
        assert query.text != " ".join(query.parts())
        assert query.grade(articles[0]) == query.max_grade


def test_the_shoppers_words_a_query_uses() -> None:
    navy_pants = AttributeQuery("trousers", "Dark Blue", wording="navy blue pants")
    assert shopper_words_of(navy_pants) == ("navy blue", "pants")
    assert shopper_words_of(AttributeQuery("trousers", "Dark Blue", wording="navy trousers")) == ("navy",)
    assert shopper_words_of(AttributeQuery("jeans", "Black", audience="men's", wording="black jeans for men")) == (
        "for men",
    )
    assert shopper_words_of(AttributeQuery("trousers", "Dark Blue")) == ()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> list[Article]:
    dataset = write_synthetic_catalog(Path(tmp_path_factory.mktemp("cat")), n_articles=3000, n_transactions=10, seed=7)
    return list(iter_articles(dataset.articles))


def test_simulated_users_are_reproducible_and_history_earns_nothing(catalogue: list[Article]) -> None:
    users = simulate_users(catalogue, 10, seed=4, id_prefix="u")
    assert users == simulate_users(catalogue, 10, seed=4, id_prefix="u")
    by_id = {a.article_id: a for a in catalogue}
    for user in users:
        assert set(user.history).isdisjoint(user.grades)
        liked = [by_id[i] for i in user.history if by_id[i].product_type == user.product_type]
        assert len(liked) >= 6
        best = [i for i, g in user.grades.items() if g == 2]
        assert best and all(by_id[i].product_type == user.product_type for i in best)
        assert user.intent.startswith(user.family + " ")


def test_group_phrase() -> None:
    assert group_phrase("Garment Lower body") == "lower body garment"
    assert group_phrase("Accessories") == "accessories"


def test_stage_table_and_report() -> None:
    table = StageTable()
    table.add(ANN, score(["b", "a"], {"a": 2, "b": 1}, 2))
    table.add(RERANK, score(["a", "b"], {"a": 2, "b": 1}, 2))
    table.add(PERSONALISED, score(["a", "b"], {"a": 2, "b": 1}, 2))
    means = table.means()
    assert means[RERANK]["ndcg@10"] == pytest.approx(1.0)
    assert lift(means, ANN, RERANK) == pytest.approx(1 / means[ANN]["ndcg@10"] - 1)
    text = report.render(
        {
            "created": "2026-11-26T10:00:00Z",
            "machine": "test",
            "catalogue": "c.csv",
            "articles": 2,
            "seed": 1,
            "relevance": {"means": means, "counts": {"queries": 1, "reranked": 1, "degraded": 0}},
            "personalisation": {"means": means, "users": 1, "cold_users": 1, "cold_unchanged": 1},
            "notes": "notes",
        }
    )
    assert "| ann+rerank | 1.0000" in text
    assert "meets the 10 % target" in text


def test_an_answer_of_every_candidate_gives_plain_ann_order_at_any_rerank_depth() -> None:
    # Five candidates in retrieval order c1..c5; a rerank as deep as all of them brought c5 to the top.
    answer = Ranked(
        final=["c5", "c1", "c2", "c3", "c4"],
        retrieval=["c1", "c2", "c3", "c4", "c5"],
        reranked=True,
        personalised=False,
        scores=[0.9, 0.8, 0.7, 0.6, 0.5],
        degradations=[],
        product_types=["Trousers"] * 5,
    )
    top = answer.top(2)
    assert top.final == ["c5", "c1"] and top.scores == [0.9, 0.8] and top.product_types == ["Trousers"] * 2
    # ANN's own top 2, not the retrieval order of the final top 2 (which would be c1, c5).
    assert top.retrieval == ["c1", "c2"]
