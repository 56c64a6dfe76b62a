"""Streaming loaders for the H&M files (articles.csv, transactions_train.csv) and the dataset folder.

Files are read one line at a time (transactions_train.csv is about 3.5 GB). A wrong file (a
header without the H&M columns) raises ValueError; a bad row is counted in the LoadReport with
its line number and reason, and skipped.

H&M's files hold one record per line, so each line is parsed on its own: a broken quote then
costs its own line only, instead of swallowing the lines after it into one huge field.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from pathlib import Path

from atelier.offline.catalog.schema import (
    ARTICLE_COLUMNS,
    ARTICLES_FILE,
    CUSTOMER_ID_LENGTH,
    IMAGES_DIR,
    SALES_CHANNELS,
    TRANSACTION_COLUMNS,
    TRANSACTIONS_FILE,
    Article,
    Transaction,
    normalise_article_id,
)

_CUSTOMER_ID = re.compile(rf"[0-9a-fA-F]{{{CUSTOMER_ID_LENGTH}}}")
_REQUIRED_ARTICLE_TEXT = ("prod_name", "product_type_name", "colour_group_name")


@dataclass
class LoadReport:
    """What a load read, kept and skipped; `bad_rows` keeps the first `max_examples` bad rows."""

    source: str = ""
    max_examples: int = 20
    rows_read: int = 0
    rows_ok: int = 0
    rows_bad: int = 0
    # Valid rows left out on purpose (transactions before `since`), not errors.
    rows_skipped: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    def bad(self, line: int, kind: str, detail: str) -> None:
        """Counts a bad row under `kind` (e.g. "price") and keeps `detail` if it is among the first ones."""
        self.rows_bad += 1
        self.reasons[kind] += 1
        if len(self.bad_rows) < self.max_examples:
            self.bad_rows.append((line, detail))

    def summary(self) -> str:
        where = f"{self.source}: " if self.source else ""
        head = f"{where}{self.rows_read} rows read, {self.rows_ok} ok"
        if self.rows_skipped:
            head += f", {self.rows_skipped} skipped by filter"
        if not self.rows_bad:
            return head
        kinds = ", ".join(f"{kind}: {count}" for kind, count in self.reasons.most_common())
        examples = "; ".join(f"line {line}: {detail}" for line, detail in self.bad_rows)
        more = self.rows_bad - len(self.bad_rows)
        tail = f"; and {more} more" if more > 0 else ""
        return f"{head}; {self.rows_bad} bad rows skipped ({kinds}): {examples}{tail}"

    def __str__(self) -> str:
        return self.summary()


@dataclass(frozen=True)
class HMDataset:
    """Paths of an H&M dataset folder; `transactions` and `images` are None where the folder lacks them."""

    directory: Path
    articles: Path
    transactions: Path | None = None
    images: Path | None = None

    def image_path(self, article_id: str) -> Path | None:
        """images/0XX/0XXXXXXXXX.jpg for the article, or None without an images folder.

        The file itself may be missing: H&M has no picture for some articles.
        """
        return None if self.images is None else photo_path(self.images, article_id)


def photo_path(images: Path, article_id: str) -> Path:
    """images/0XX/0XXXXXXXXX.jpg: where a catalogue's images folder keeps the article's photo."""
    normalised = normalise_article_id(article_id)
    return images / normalised[:3] / f"{normalised}.jpg"


def find_hm_dataset(directory: str | Path) -> HMDataset | None:
    """The H&M dataset in `directory` (a folder holding articles.csv, or that file itself), or None."""
    path = Path(directory)
    if path.is_file() and path.name == ARTICLES_FILE:
        path = path.parent
    articles = path / ARTICLES_FILE
    if not articles.is_file():
        return None
    transactions = path / TRANSACTIONS_FILE
    images = path / IMAGES_DIR
    return HMDataset(
        directory=path,
        articles=articles,
        transactions=transactions if transactions.is_file() else None,
        images=images if images.is_dir() else None,
    )


class _OneLine:
    """Feeds the csv reader exactly the line it is given: a record may not run past its line."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line: str | None = None

    def __iter__(self) -> _OneLine:
        return self

    def __next__(self) -> str:
        line, self.line = self.line, None
        if line is None:
            raise StopIteration
        return line


def _records(path: Path, columns: Sequence[str], report: LoadReport) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(line number, values in `columns` order) for each well-formed line; reports the others.

    The header may order the columns differently or add some (an exported index); it must hold
    every column in `columns`.
    """
    feed = _OneLine()
    reader = csv.reader(feed, strict=True)
    with path.open("rb") as handle:
        header = _header(handle.readline(), path, feed, reader)
        missing = [name for name in columns if name not in header]
        if missing:
            raise ValueError(
                f"{path} is not an H&M {path.name}: missing columns {', '.join(missing)} "
                f"(header: {', '.join(header) or 'empty'})"
            )
        if len(set(header)) != len(header):
            duplicated = sorted({name for name in header if header.count(name) > 1})
            raise ValueError(f"{path}: duplicate header columns {', '.join(duplicated)}")
        pick = itemgetter(*(header.index(name) for name in columns))
        width = len(header)
        for number, raw in enumerate(handle, start=2):
            try:
                feed.line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                report.rows_read += 1
                report.bad(number, "encoding", f"undecodable bytes at byte {error.start + 1} of the line")
                continue
            try:
                row = next(reader)
            except csv.Error as error:
                report.rows_read += 1
                report.bad(number, "csv", f"malformed CSV: {error}")
                continue
            if not row:
                continue
            report.rows_read += 1
            if len(row) != width:
                report.bad(number, "column count", f"{len(row)} columns, expected {width}")
                continue
            yield number, pick(row)


def _header(raw: bytes, path: Path, feed: _OneLine, reader: Iterator[list[str]]) -> list[str]:
    if not raw:
        raise ValueError(f"{path} is empty: expected a header line")
    try:
        feed.line = raw.decode("utf-8-sig")
        return [name.strip() for name in next(reader)]
    except (UnicodeDecodeError, csv.Error, StopIteration) as error:
        raise ValueError(f"{path}: unreadable header line ({error})") from error


def iter_articles(path: str | Path, report: LoadReport | None = None) -> Iterator[Article]:
    """Streams valid articles from an articles.csv, reporting and skipping bad rows (see `iter_article_rows`)."""
    for row in iter_article_rows(path, report):
        yield Article.from_row(row)


def iter_article_rows(path: str | Path, report: LoadReport | None = None) -> Iterator[dict[str, str]]:
    """Streams the valid rows of an articles.csv (column -> text, article_id normalised), reporting
    and skipping bad rows: for readers of columns that `Article` leaves out.

    Bad rows: a wrong column count, an article_id that is not 1-10 digits (shorter ids are
    zero-padded to 10), an empty prod_name, product_type_name or colour_group_name, a
    repeated article_id (the first one wins), undecodable bytes, broken CSV quoting.
    The header is checked when iteration starts.
    """
    path = Path(path)
    report = report if report is not None else LoadReport()
    report.source = report.source or str(path)
    first_seen: dict[str, int] = {}
    for number, values in _records(path, ARTICLE_COLUMNS, report):
        row = dict(zip(ARTICLE_COLUMNS, values, strict=True))
        try:
            article_id = normalise_article_id(row["article_id"])
        except ValueError as error:
            report.bad(number, "article_id", str(error))
            continue
        empty = next((name for name in _REQUIRED_ARTICLE_TEXT if not row[name].strip()), None)
        if empty is not None:
            report.bad(number, f"empty {empty}", f"article {article_id}: {empty} is empty")
            continue
        if article_id in first_seen:
            report.bad(
                number,
                "duplicate article_id",
                f"duplicate article_id {article_id} (first at line {first_seen[article_id]})",
            )
            continue
        first_seen[article_id] = number
        row["article_id"] = article_id
        report.rows_ok += 1
        yield row


def iter_transactions(
    path: str | Path, report: LoadReport | None = None, since: date | None = None
) -> Iterator[Transaction]:
    """Streams valid transactions from a transactions_train.csv, reporting and skipping bad rows.

    Bad rows: a wrong column count, a t_dat that is not YYYY-MM-DD, a customer_id that is not 64
    hex digits, a bad article_id (as for articles; short ids are zero-padded), a price that is not
    a finite number >= 0, a sales_channel_id other than 1 or 2. Rows dated before `since` are
    counted in `rows_skipped` once their date is read, without checking the rest.
    """
    path = Path(path)
    report = report if report is not None else LoadReport()
    report.source = report.source or str(path)
    # Millions of rows name a few hundred days and about 100,000 articles: parse each once.
    days: dict[str, date] = {}
    article_ids: dict[str, str] = {}
    channels = {str(channel): channel for channel in SALES_CHANNELS}
    for number, (t_dat, customer_id, article_id, price_text, channel_text) in _records(
        path, TRANSACTION_COLUMNS, report
    ):
        day = days.get(t_dat)
        if day is None:
            day = _parse_day(t_dat)
            if day is None:
                report.bad(number, "t_dat", f"t_dat {t_dat!r} is not a YYYY-MM-DD date")
                continue
            days[t_dat] = day
        if since is not None and day < since:
            report.rows_skipped += 1
            continue
        if _CUSTOMER_ID.fullmatch(customer_id) is None:
            report.bad(
                number, "customer_id", f"customer_id {_clip(customer_id)!r} is not {CUSTOMER_ID_LENGTH} hex digits"
            )
            continue
        normalised = article_ids.get(article_id)
        if normalised is None:
            try:
                normalised = article_ids[article_id] = normalise_article_id(article_id)
            except ValueError as error:
                report.bad(number, "article_id", str(error))
                continue
        try:
            price = float(price_text)
        except ValueError:
            price = math.nan
        if not (math.isfinite(price) and price >= 0.0):
            report.bad(number, "price", f"price {_clip(price_text)!r} is not a number >= 0")
            continue
        channel = channels.get(channel_text.strip())
        if channel is None:
            report.bad(number, "sales_channel_id", f"sales_channel_id {_clip(channel_text)!r} is not 1 or 2")
            continue
        report.rows_ok += 1
        yield Transaction(day, customer_id.lower(), normalised, price, channel)


def _parse_day(text: str) -> date | None:
    # fromisoformat alone would also take "20200922" and week dates.
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
