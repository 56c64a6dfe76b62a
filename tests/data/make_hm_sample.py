"""Regenerates tests/data/hm_sample/: a small H&M-schema sample with deliberately malformed rows.

    .venv/bin/python tests/data/make_hm_sample.py [output directory]

The good rows come from the synthetic generator (fixed seed); the bad rows below are inserted
after fixed good rows, so their line numbers are stable. tests/unit/test_catalog_loader.py
asserts on those line numbers and checks that this script reproduces the checked-in files.
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import date
from pathlib import Path

from atelier.offline.catalog.schema import ARTICLE_COLUMNS, ARTICLES_FILE, TRANSACTION_COLUMNS, TRANSACTIONS_FILE
from atelier.offline.catalog.synthetic import generate_articles, generate_transactions

SAMPLE_DIR = Path(__file__).resolve().parent / "hm_sample"
SEED = 7
N_ARTICLES = 300
N_TRANSACTIONS = 490
END_DAY = date(2020, 9, 22)
DAYS = 14
# Good rows whose article_id loses its leading zero, as after a round trip through a spreadsheet.
UNPADDED_ARTICLES = (10, 20)
UNPADDED_TRANSACTIONS = (30,)
FRESH_ID = "099999{:04d}"  # ids far above the generated ones, for bad rows that must not be duplicates


def _line(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def _with(row: dict[str, str], **changes: str) -> list[str]:
    return [changes.get(column, row[column]) for column in row]


def article_lines() -> list[bytes]:
    rows = list(generate_articles(N_ARTICLES, SEED))
    for index in UNPADDED_ARTICLES:
        rows[index]["article_id"] = rows[index]["article_id"].lstrip("0")
    model = rows[0]
    fields = _with(model, article_id=FRESH_ID.format(9))
    name_at, description_at = ARTICLE_COLUMNS.index("prod_name"), ARTICLE_COLUMNS.index("detail_desc")
    # after good row i (0-based) -> the bad lines that follow it
    bad: dict[int, list[bytes]] = {
        3: [_line(list(model.values())[:20])],  # too few columns
        17: [_line([*_with(model, article_id=FRESH_ID.format(1)), "extra"])],  # too many columns
        40: [_line(_with(model, article_id="01087X5015"))],  # not digits
        63: [_line(_with(model, article_id="012345678901"))],  # 12 digits
        88: [_line(_with(model, article_id=FRESH_ID.format(2), prod_name=""))],
        120: [_line(_with(model, article_id=FRESH_ID.format(3), product_type_name=""))],
        151: [_line(_with(model, article_id=FRESH_ID.format(4), colour_group_name="  "))],
        # repeats good row 5's id: the first one wins
        180: [_line(_with(rows[5], prod_name=rows[5]["prod_name"] + " (copy)"))],
        # text after a closing quote
        205: [_line(fields[:name_at])[:-1] + f',"{fields[name_at]}"x,'.encode() + _line(fields[name_at + 1 :])],
        # a quote that never closes: only its own line is lost
        230: [_line(fields[:description_at])[:-1] + f',"{fields[description_at]}'.encode() + b"\n"],
        # Latin-1 bytes in a UTF-8 file
        260: [
            _line(_with(model, article_id=FRESH_ID.format(5), prod_name="Caf\u2603")).replace(
                "\u2603".encode(), b"\xe9"
            )
        ],
        # a blank line is not a row
        299: [b"\n"],
    }
    lines = [_line(list(ARTICLE_COLUMNS))]
    for index, row in enumerate(rows):
        lines.append(_line(list(row.values())))
        lines.extend(bad.get(index, []))
    return lines


def transaction_lines() -> list[bytes]:
    articles = list(generate_articles(N_ARTICLES, SEED))
    rows = list(generate_transactions(articles, N_TRANSACTIONS, SEED, END_DAY, DAYS))
    for index in UNPADDED_TRANSACTIONS:
        rows[index]["article_id"] = rows[index]["article_id"].lstrip("0")
    model = rows[0]
    bad: dict[int, list[bytes]] = {
        12: [_line(_with(model, t_dat="2020-13-01"))],
        45: [_line(_with(model, t_dat="22/09/2020"))],
        90: [_line(_with(model, price="abc"))],
        133: [_line(_with(model, price="-0.0169"))],
        170: [_line(_with(model, price="nan"))],
        222: [_line(_with(model, sales_channel_id="3"))],
        260: [_line(_with(model, customer_id="abc123"))],
        301: [_line(_with(model, customer_id="g" * 64))],
        350: [_line(_with(model, article_id="0108775A15"))],
        420: [_line(list(model.values())[:4])],
    }
    lines = [_line(list(TRANSACTION_COLUMNS))]
    for index, row in enumerate(rows):
        lines.append(_line(list(row.values())))
        lines.extend(bad.get(index, []))
    return lines


def write_sample(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ARTICLES_FILE).write_bytes(b"".join(article_lines()))
    (directory / TRANSACTIONS_FILE).write_bytes(b"".join(transaction_lines()))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE_DIR
    write_sample(target)
    sizes = {path.name: path.stat().st_size for path in sorted(target.iterdir())}
    print(f"wrote {target}: {sizes}")
