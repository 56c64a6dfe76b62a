"""The synthetic H&M catalogue: exact schema, determinism, scale and a vocabulary queries can rely on."""

from __future__ import annotations

import csv
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from atelier.offline.catalog.hm_loader import LoadReport, find_hm_dataset, iter_articles, iter_transactions
from atelier.offline.catalog.schema import ARTICLE_COLUMNS, TRANSACTION_COLUMNS, Article
from atelier.offline.catalog.synthetic import (
    COLOUR_WORDS,
    COLOURS,
    PRODUCT_TYPES,
    STYLE_TERMS,
    generate_articles,
    generate_transactions,
    write_synthetic_catalog,
)
from atelier.offline.catalog.vocabulary import (
    GARMENT_GROUPS,
    GRAPHICAL_APPEARANCES,
    INDEX_GROUPS,
    INDEXES,
    PERCEIVED_COLOUR_VALUES,
    PRODUCT_TYPES_BY_NAME,
    SECTIONS,
)

H_AND_M_ARTICLES = 105_542


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9-]+", text.lower()))


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return list(generate_articles(20_000, seed=11))


@pytest.fixture(scope="module")
def full_catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Article], float]:
    """All 105,542 articles, generated (timed), written and read back through the loader."""
    directory = tmp_path_factory.mktemp("full")
    started = time.perf_counter()
    for _ in generate_articles(H_AND_M_ARTICLES, seed=0):
        pass
    seconds = time.perf_counter() - started
    dataset = write_synthetic_catalog(directory, n_transactions=0, seed=0)
    report = LoadReport()
    articles = list(iter_articles(dataset.articles, report))
    assert report.rows_bad == 0, report.summary()
    return articles, seconds


def _read(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.reader(handle)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = write_synthetic_catalog(tmp_path / "a", n_articles=3_000, n_transactions=20_000, seed=5)
    again = write_synthetic_catalog(tmp_path / "b", n_articles=3_000, n_transactions=20_000, seed=5)
    other = write_synthetic_catalog(tmp_path / "c", n_articles=3_000, n_transactions=20_000, seed=6)
    for name in ("articles.csv", "transactions_train.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert first.transactions is not None and again.articles.is_file() and other.articles.is_file()
    assert not list(tmp_path.glob("*/*.partial"))


def test_fewer_articles_are_a_prefix_of_more() -> None:
    assert list(generate_articles(700, seed=3)) == list(generate_articles(1_500, seed=3))[:700]
    assert list(generate_articles(0, seed=3)) == []
    with pytest.raises(ValueError, match="n must be"):
        list(generate_articles(-1, seed=3))


def test_files_have_exactly_the_h_and_m_schema_and_load_cleanly(tmp_path: Path) -> None:
    dataset = write_synthetic_catalog(tmp_path, n_articles=2_000, n_transactions=5_000, seed=1)
    assert dataset == find_hm_dataset(tmp_path)
    assert dataset.transactions is not None

    articles = list(_read(dataset.articles))
    assert tuple(articles[0]) == ARTICLE_COLUMNS
    assert {len(row) for row in articles} == {len(ARTICLE_COLUMNS)}
    transactions = list(_read(dataset.transactions))
    assert tuple(transactions[0]) == TRANSACTION_COLUMNS
    assert {len(row) for row in transactions} == {len(TRANSACTION_COLUMNS)}
    for row in transactions[1:]:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row[0])
        assert re.fullmatch(r"[0-9a-f]{64}", row[1])
        assert re.fullmatch(r"0\d{9}", row[2])
        assert 0 < float(row[3]) < 0.6
        assert row[4] in ("1", "2")

    article_report, transaction_report = LoadReport(), LoadReport()
    assert len(list(iter_articles(dataset.articles, article_report))) == 2_000
    assert len(list(iter_transactions(dataset.transactions, transaction_report))) == 5_000
    assert article_report.rows_bad == transaction_report.rows_bad == 0


def test_codes_are_fixed_per_value_and_consistent(rows: list[dict[str, str]]) -> None:
    pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        assert re.fullmatch(r"0\d{9}", row["article_id"])
        assert row["product_code"] == row["article_id"][:7]
        product_type = PRODUCT_TYPES_BY_NAME[row["product_type_name"]]
        assert row["product_type_no"] == str(product_type.number)
        assert row["product_group_name"] == product_type.group
        colour = next(colour for colour in COLOURS if colour.name == row["colour_group_name"])
        assert row["colour_group_code"] == str(colour.code)
        assert row["perceived_colour_value_id"] == str(colour.value_id)
        assert row["perceived_colour_value_name"] == PERCEIVED_COLOUR_VALUES[colour.value_id]
        assert row["perceived_colour_master_id"] == str(colour.master_id)
        assert row["perceived_colour_master_name"] == colour.master
        assert row["graphical_appearance_no"] == str(GRAPHICAL_APPEARANCES[row["graphical_appearance_name"]])
        assert row["garment_group_no"] == str(GARMENT_GROUPS[row["garment_group_name"]])
        assert INDEXES[row["index_code"]] == (row["index_name"], row["index_group_name"])
        assert row["index_group_no"] == str(INDEX_GROUPS[row["index_group_name"]])
        assert row["section_no"] == str(SECTIONS[row["section_name"]])
        assert row["index_group_name"] in product_type.index_groups
        for left, right in (
            ("department_no", "department_name"),
            ("department_no", "index_code"),
            ("department_no", "section_name"),
            ("product_code", "prod_name"),
            ("product_code", "product_type_name"),
            ("product_code", "department_no"),
        ):
            pairs[left + ":" + row[left], right].add(row[right])
    many = {key: values for key, values in pairs.items() if len(values) > 1}
    assert not many, f"attributes that vary where H&M fixes them: {list(many.items())[:5]}"


def test_kids_and_menswear_get_fitting_products(rows: list[dict[str, str]]) -> None:
    by_index_group: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        by_index_group[row["index_group_name"]][row["product_type_name"]] += 1
    assert not {"Dress", "Skirt", "Blouse", "Bra", "Bikini top"} & set(by_index_group["Menswear"])
    assert "Bra" not in by_index_group["Baby/Children"]
    assert set(by_index_group["Sport"]) <= {
        name for name, pt in PRODUCT_TYPES_BY_NAME.items() if "Sport" in pt.index_groups
    }
    children = Counter(row["garment_group_name"] for row in rows if row["index_group_name"] == "Baby/Children")
    assert children["Dresses/Skirts girls"] > 0
    assert children["Dresses Ladies"] == children["Skirts"] == 0


def test_descriptions_read_like_h_and_m(rows: list[dict[str, str]]) -> None:
    descriptions = [row["detail_desc"] for row in rows]
    empty = sum(not text for text in descriptions)
    assert 0 < empty < 0.02 * len(rows)
    assert all(text.endswith(".") and not text[0].islower() for text in descriptions if text)
    with_colour = sum(row["colour_group_name"].lower() in row["detail_desc"] for row in rows)
    assert 0.15 * len(rows) < with_colour < 0.5 * len(rows)
    jeans = [row["detail_desc"] for row in rows if "Jeans" in row["prod_name"] and row["detail_desc"]]
    assert jeans and all("jeans in " in text and "denim" in text for text in jeans)


def test_full_size_catalogue_is_fast_unique_and_skewed(full_catalogue: tuple[list[Article], float]) -> None:
    articles, seconds = full_catalogue
    print(f"generated {H_AND_M_ARTICLES} articles in {seconds:.2f} s")
    assert seconds < 30
    assert len(articles) == H_AND_M_ARTICLES
    ids = [article.article_id for article in articles]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(article_id) == 10 and article_id.isdigit() for article_id in ids)
    products = Counter(article_id[:7] for article_id in ids)
    assert 1.8 < len(ids) / len(products) < 3.0  # H&M: 105,542 articles of 47,224 products
    types = Counter(article.product_type for article in articles)
    assert set(types) == {product_type.name for product_type in PRODUCT_TYPES}
    assert types.most_common(1)[0][0] == "Trousers"
    assert types["Trousers"] > 4 * types["Hat/beanie"]
    assert types["Dress"] > 4 * types["Coat"]
    colours = Counter(article.colour for article in articles)
    assert set(colours) == {colour.name for colour in COLOURS}
    assert colours.most_common(1)[0][0] == "Black"


def test_every_article_carries_the_words_a_user_types(full_catalogue: tuple[list[Article], float]) -> None:
    articles, _ = full_catalogue
    for article in articles:
        type_text = f"{article.name} {article.product_type}".lower()
        text = article.text().lower()
        for term in PRODUCT_TYPES_BY_NAME[article.product_type].terms:
            assert term in type_text and term in text, (term, article)
        family = next(colour.family for colour in COLOURS if colour.name == article.colour)
        assert family in article.colour.lower() and family in text
    dresses = [article for article in articles if article.product_type == "Dress"]
    assert dresses and all("dress" in article.name.lower() for article in dresses)


def test_jeans_are_denim_trousers_and_only_they_are_called_jeans(full_catalogue: tuple[list[Article], float]) -> None:
    articles, _ = full_catalogue
    jeans = [article for article in articles if "jeans" in _words(article.name)]
    denim_trousers = [
        article
        for article in articles
        if article.product_type == "Trousers" and article.garment_group == "Trousers Denim"
    ]
    assert jeans and jeans == denim_trousers


def test_style_terms_name_one_product_type(full_catalogue: tuple[list[Article], float]) -> None:
    articles, _ = full_catalogue
    for word, product_type in STYLE_TERMS.items():
        types = Counter(article.product_type for article in articles if word in _words(article.name))
        assert set(types) == {product_type}, (word, types)


def test_colour_words_cover_every_colour() -> None:
    assert {name for names in COLOUR_WORDS.values() for name in names} == {colour.name for colour in COLOURS}
    assert COLOUR_WORDS["blue"] == ("Light Blue", "Blue", "Dark Blue")
    for word, names in COLOUR_WORDS.items():
        assert all(word in name.lower() for name in names)
    terms = {term for product_type in PRODUCT_TYPES for term in product_type.terms}
    assert {"trousers", "dress", "t-shirt", "hat", "beanie", "leggings", "jumpsuit"} <= terms


def test_transactions_follow_popularity_and_customer_taste() -> None:
    articles = list(generate_articles(5_000, seed=2))
    end_day = date(2020, 9, 22)
    transactions = list(generate_transactions(articles, 60_000, seed=2, end_day=end_day, days=28))
    assert len(transactions) == 60_000
    assert transactions == list(generate_transactions(articles, 60_000, seed=2, end_day=end_day, days=28))

    days = [row["t_dat"] for row in transactions]
    assert days == sorted(days)
    assert days[0] == (end_day - timedelta(days=27)).isoformat() and days[-1] == end_day.isoformat()
    known = {row["article_id"] for row in articles}
    assert {row["article_id"] for row in transactions} <= known

    sales = Counter(row["article_id"] for row in transactions)
    top = sum(count for _, count in sales.most_common(len(articles) // 100))
    assert top > 0.1 * len(transactions)  # the top 1 % of articles sell well over 1 %

    product_type = {row["article_id"]: row["product_type_name"] for row in articles}
    overall = Counter(product_type[row["article_id"]] for row in transactions)
    by_customer: dict[str, Counter[str]] = defaultdict(Counter)
    for row in transactions:
        by_customer[row["customer_id"]][product_type[row["article_id"]]] += 1
    regulars = [counts for counts in by_customer.values() if counts.total() >= 20]
    favourite_share = sum(counts.most_common(1)[0][1] / counts.total() for counts in regulars) / len(regulars)
    assert regulars and favourite_share > 2 * overall.most_common(1)[0][1] / len(transactions)

    channels = Counter(row["sales_channel_id"] for row in transactions)
    assert channels["2"] > channels["1"] > 0  # H&M sells mostly online
    mean_price = sum(float(row["price"]) for row in transactions) / len(transactions)
    assert 0.015 < mean_price < 0.06


def test_transactions_accept_articles_as_records() -> None:
    rows = list(generate_articles(300, seed=4))
    records = [Article.from_row(row) for row in rows]
    assert list(generate_transactions(records, 500, seed=4)) == list(generate_transactions(rows, 500, seed=4))
    assert list(generate_transactions(rows, 0, seed=4)) == []
    with pytest.raises(ValueError, match="at least one article"):
        list(generate_transactions([], 10, seed=4))
