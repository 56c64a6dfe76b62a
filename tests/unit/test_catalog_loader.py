"""The H&M loaders on the checked-in sample (tests/data/hm_sample, made by tests/data/make_hm_sample.py)."""

from __future__ import annotations

import csv
import importlib.util
import re
from collections import Counter
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from atelier.offline.catalog.hm_loader import HMDataset, LoadReport, find_hm_dataset, iter_articles, iter_transactions
from atelier.offline.catalog.schema import ARTICLE_COLUMNS, TRANSACTION_COLUMNS, Article, normalise_article_id

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "hm_sample"
ARTICLES = SAMPLE / "articles.csv"
TRANSACTIONS = SAMPLE / "transactions_train.csv"

# Where make_hm_sample.py puts its malformed rows (line 1 is the header).
ARTICLE_BAD_LINES = {
    6: "column count",
    21: "column count",
    45: "article_id",
    69: "article_id",
    95: "empty prod_name",
    128: "empty product_type_name",
    160: "empty colour_group_name",
    190: "duplicate article_id",
    216: "csv",
    242: "csv",
    273: "encoding",
}
TRANSACTION_BAD_LINES = {
    15: "t_dat",
    49: "t_dat",
    95: "price",
    139: "price",
    177: "price",
    230: "sales_channel_id",
    269: "customer_id",
    311: "customer_id",
    361: "article_id",
    432: "column count",
}


def _raw_first_fields(path: Path) -> dict[int, str]:
    """Line number -> first field, read without the loader (for ids the sample left unpadded)."""
    with path.open("rb") as handle:
        return {number: raw.split(b",", 1)[0].decode("utf-8", "replace") for number, raw in enumerate(handle, 1)}


def test_articles_sample_counts_every_row_and_skips_exactly_the_bad_ones() -> None:
    report = LoadReport()
    articles = list(iter_articles(ARTICLES, report))

    assert (report.rows_read, report.rows_ok, report.rows_bad, report.rows_skipped) == (311, 300, 11, 0)
    assert len(articles) == 300
    assert report.reasons == Counter(ARTICLE_BAD_LINES.values())
    assert [line for line, _ in report.bad_rows] == sorted(ARTICLE_BAD_LINES)
    reasons = dict(report.bad_rows)
    assert reasons[6] == "20 columns, expected 25"
    assert reasons[21] == "26 columns, expected 25"
    assert reasons[45] == "article_id '01087X5015' is not digits"
    assert reasons[69] == "article_id '012345678901' is longer than 10 digits"
    assert reasons[95] == "article 0999990002: prod_name is empty"
    assert reasons[160] == "article 0999990004: colour_group_name is empty"
    assert reasons[216].startswith("malformed CSV")
    assert reasons[242] == "malformed CSV: unexpected end of data"
    assert reasons[273].startswith("undecodable bytes")


def test_an_unclosed_quote_costs_only_its_own_line() -> None:
    lines = _raw_first_fields(ARTICLES)
    ids = {article.article_id for article in iter_articles(ARTICLES)}
    assert lines[243] in ids


def test_short_article_ids_are_zero_padded_and_every_id_has_10_digits() -> None:
    articles = list(iter_articles(ARTICLES))
    ids = {article.article_id for article in articles}
    unpadded = [value for value in _raw_first_fields(ARTICLES).values() if re.fullmatch(r"\d{9}", value)]
    assert len(unpadded) == 2
    assert {value.zfill(10) for value in unpadded} <= ids
    assert all(re.fullmatch(r"\d{10}", article.article_id) for article in articles)
    assert len(ids) == len(articles)


def test_a_repeated_article_id_keeps_the_first_row() -> None:
    report = LoadReport()
    articles = {article.article_id: article for article in iter_articles(ARTICLES, report)}
    match = re.fullmatch(r"duplicate article_id (\d{10}) \(first at line (\d+)\)", dict(report.bad_rows)[190])
    assert match is not None
    article_id, first_line = match.groups()
    assert first_line == "8"
    assert _raw_first_fields(ARTICLES)[8] == article_id
    assert not articles[article_id].name.endswith("(copy)")


def test_articles_carry_the_fields_the_system_uses() -> None:
    article = next(iter_articles(ARTICLES))
    with ARTICLES.open(encoding="utf-8", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert article == Article(
        article_id=row["article_id"],
        name=row["prod_name"],
        product_type=row["product_type_name"],
        product_group=row["product_group_name"],
        colour=row["colour_group_name"],
        department=row["department_name"],
        index_group=row["index_group_name"],
        garment_group=row["garment_group_name"],
        description=row["detail_desc"],
    )
    assert article.category() == article.product_type


def test_transactions_sample_counts_every_row_and_skips_exactly_the_bad_ones() -> None:
    report = LoadReport()
    transactions = list(iter_transactions(TRANSACTIONS, report))

    assert (report.rows_read, report.rows_ok, report.rows_bad) == (500, 490, 10)
    assert report.reasons == Counter(TRANSACTION_BAD_LINES.values())
    assert [line for line, _ in report.bad_rows] == sorted(TRANSACTION_BAD_LINES)
    reasons = dict(report.bad_rows)
    assert reasons[15] == "t_dat '2020-13-01' is not a YYYY-MM-DD date"
    assert reasons[49] == "t_dat '22/09/2020' is not a YYYY-MM-DD date"
    assert reasons[177] == "price 'nan' is not a number >= 0"
    assert reasons[230] == "sales_channel_id '3' is not 1 or 2"
    assert reasons[269] == "customer_id 'abc123' is not 64 hex digits"
    assert reasons[432] == "4 columns, expected 5"

    assert all(re.fullmatch(r"[0-9a-f]{64}", t.customer_id) for t in transactions)
    assert all(re.fullmatch(r"\d{10}", t.article_id) for t in transactions)
    assert {t.sales_channel_id for t in transactions} == {1, 2}
    assert all(0 < t.price < 0.6 for t in transactions)


def test_transactions_pad_short_article_ids() -> None:
    with TRANSACTIONS.open(encoding="utf-8") as handle:
        short = [line.split(",")[2] for line in handle if re.fullmatch(r"\d{9}", line.split(",")[2])]
    assert len(short) == 1
    ids = {t.article_id for t in iter_transactions(TRANSACTIONS)}
    assert short[0].zfill(10) in ids


def test_since_skips_earlier_days_without_calling_them_bad() -> None:
    since = date(2020, 9, 16)
    everything = list(iter_transactions(TRANSACTIONS))
    report = LoadReport()
    recent = list(iter_transactions(TRANSACTIONS, report, since=since))

    assert recent == [t for t in everything if t.day >= since]
    assert report.rows_ok == len(recent) > 0
    assert report.rows_skipped > 0
    # Only the rows whose date is unreadable (and the short row) are still bad; the other bad
    # rows are dated before `since` and are skipped unchecked.
    assert report.reasons == Counter({"t_dat": 2, "column count": 1})
    assert report.rows_ok + report.rows_skipped + report.rows_bad == report.rows_read == 500


def test_a_wrong_file_is_an_error_naming_the_missing_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing columns product_code, prod_name, product_type_no"):
        list(iter_articles(TRANSACTIONS))
    with pytest.raises(ValueError, match=r"missing columns t_dat, customer_id, price, sales_channel_id"):
        list(iter_transactions(ARTICLES))
    empty = tmp_path / "articles.csv"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        list(iter_articles(empty))


def test_the_header_may_reorder_columns_add_an_index_and_start_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "transactions_train.csv"
    columns = ["", *reversed(TRANSACTION_COLUMNS)]
    row = {
        "": "0",
        "t_dat": "2020-09-22",
        "customer_id": "A" * 64,
        "article_id": "108775015",
        "price": "0.05",
        "sales_channel_id": "2",
    }
    path.write_text("\ufeff" + ",".join(columns) + "\n" + ",".join(row[c] for c in columns) + "\n", encoding="utf-8")
    report = LoadReport()
    (transaction,) = iter_transactions(path, report)
    assert transaction.day == date(2020, 9, 22)
    assert transaction.customer_id == "a" * 64
    assert transaction.article_id == "0108775015"
    assert transaction.price == 0.05
    assert transaction.sales_channel_id == 2
    assert report.rows_bad == 0


def test_duplicate_header_columns_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "articles.csv"
    path.write_text(",".join([*ARTICLE_COLUMNS, "prod_name"]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate header columns prod_name"):
        list(iter_articles(path))


def test_the_report_keeps_a_bounded_list_and_summarises() -> None:
    report = LoadReport(max_examples=3)
    list(iter_articles(ARTICLES, report))
    assert report.rows_bad == 11
    assert len(report.bad_rows) == 3
    summary = report.summary()
    assert summary.startswith(f"{ARTICLES}: 311 rows read, 300 ok; 11 bad rows skipped (")
    assert "line 45: article_id '01087X5015' is not digits" in summary
    assert summary.endswith("; and 8 more")
    assert str(report) == summary
    assert "bad" not in str(LoadReport(source="x", rows_read=2, rows_ok=2))


def test_normalise_article_id() -> None:
    assert normalise_article_id("108775015") == "0108775015"
    assert normalise_article_id(" 0108775015 ") == "0108775015"
    for bad in ("", "abc", "01087750\uff115", "-108775015", "1.08775015", "01234567890"):
        with pytest.raises(ValueError, match="article_id"):
            normalise_article_id(bad)


def test_article_text_is_name_attributes_then_description() -> None:
    article = Article(
        article_id="0108775015",
        name="Slim Fit Jeans",
        product_type="Trousers",
        product_group="Garment Lower body",
        colour="Black",
        department="Trousers",
        index_group="Menswear",
        garment_group="Trousers Denim",
        description="Slim-fit jeans in washed denim with a regular waist.",
    )
    assert article.text() == (
        "Slim Fit Jeans. Black Trousers, Garment Lower body, Menswear, Trousers Denim. "
        "Slim-fit jeans in washed denim with a regular waist."
    )
    bare = Article("0000000001", "Socks", "Socks", "Socks & Tights", "White", "Socks & Tights", "Menswear", "Socks")
    assert bare.text() == "Socks. White Socks, Socks & Tights, Menswear."


def test_find_hm_dataset(tmp_path: Path) -> None:
    assert find_hm_dataset(tmp_path) is None
    dataset = find_hm_dataset(SAMPLE)
    assert dataset == HMDataset(directory=SAMPLE, articles=ARTICLES, transactions=TRANSACTIONS, images=None)
    assert dataset.image_path("0108775015") is None
    assert find_hm_dataset(ARTICLES) == dataset

    (tmp_path / "articles.csv").write_text(",".join(ARTICLE_COLUMNS) + "\n", encoding="utf-8")
    (tmp_path / "images").mkdir()
    found = find_hm_dataset(str(tmp_path))
    assert found is not None
    assert found.transactions is None
    assert found.image_path("108775015") == tmp_path / "images" / "010" / "0108775015.jpg"


def _load_sample_maker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_hm_sample", DATA / "make_hm_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_sample_is_what_the_script_makes(tmp_path: Path) -> None:
    _load_sample_maker().write_sample(tmp_path)
    for name in ("articles.csv", "transactions_train.csv"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), (
            f"{name} is stale: run .venv/bin/python tests/data/make_hm_sample.py"
        )
    assert ARTICLES.stat().st_size + TRANSACTIONS.stat().st_size < 150_000
