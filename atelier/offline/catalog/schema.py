"""The Kaggle "H&M Personalized Fashion Recommendations" file layouts and the records the system uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from atelier.serving import articles

ARTICLES_FILE = "articles.csv"
TRANSACTIONS_FILE = "transactions_train.csv"
IMAGES_DIR = "images"

ARTICLE_COLUMNS: tuple[str, ...] = (
    "article_id",
    "product_code",
    "prod_name",
    "product_type_no",
    "product_type_name",
    "product_group_name",
    "graphical_appearance_no",
    "graphical_appearance_name",
    "colour_group_code",
    "colour_group_name",
    "perceived_colour_value_id",
    "perceived_colour_value_name",
    "perceived_colour_master_id",
    "perceived_colour_master_name",
    "department_no",
    "department_name",
    "index_code",
    "index_name",
    "index_group_no",
    "index_group_name",
    "section_no",
    "section_name",
    "garment_group_no",
    "garment_group_name",
    "detail_desc",
)

# t_dat: YYYY-MM-DD; customer_id: 64 hex chars; article_id: 10 digits with its leading zero;
# price: H&M's scaled price (about 0.0-0.6); sales_channel_id: 1 (store) or 2 (online).
TRANSACTION_COLUMNS: tuple[str, ...] = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")
SALES_CHANNELS = frozenset({1, 2})

ARTICLE_ID_DIGITS = 10
PRODUCT_CODE_DIGITS = 7
CUSTOMER_ID_LENGTH = 64


def normalise_article_id(raw: str) -> str:
    """The 10-digit article id, restoring the leading zeros that spreadsheets and int parsing drop.

    Raises ValueError (with a message fit for a load report) for anything but 1 to 10 ASCII digits.
    """
    value = raw.strip()
    if not value or not (value.isascii() and value.isdigit()):
        raise ValueError(f"article_id {raw!r} is not digits")
    if len(value) > ARTICLE_ID_DIGITS:
        raise ValueError(f"article_id {raw!r} is longer than {ARTICLE_ID_DIGITS} digits")
    return value.zfill(ARTICLE_ID_DIGITS)


@dataclass(frozen=True, slots=True)
class Article:
    article_id: str
    name: str
    product_type: str
    product_group: str
    colour: str
    department: str
    index_group: str
    garment_group: str
    description: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> Article:
        """An article from an articles.csv row (column -> value); the loader validates rows before this."""
        return cls(
            article_id=normalise_article_id(row["article_id"]),
            name=row["prod_name"].strip(),
            product_type=row["product_type_name"].strip(),
            product_group=row["product_group_name"].strip(),
            colour=row["colour_group_name"].strip(),
            department=row["department_name"].strip(),
            index_group=row["index_group_name"].strip(),
            garment_group=row["garment_group_name"].strip(),
            description=(row.get("detail_desc") or "").strip(),
        )

    @classmethod
    def from_fields(cls, article_id: str, fields: Mapping[str, str]) -> Article:
        """An article from its stored fields (a Milvus row or a Redis item hash)."""
        return cls(article_id, **{field: fields.get(field, "") for field in articles.FIELDS})

    def fields(self) -> dict[str, str]:
        """Every field of fashion.v1.Article but the id, by name."""
        return {field: getattr(self, field) for field in articles.FIELDS}

    def text(self) -> str:
        """The passage we embed and rerank (atelier.serving.articles.passage)."""
        return articles.passage(self.fields())

    def category(self) -> str:
        """The category personalisation counts affinity for."""
        return articles.category(self.fields())


# The record holds exactly fashion.v1.Article's fields, the proto being where they are declared.
if tuple(field.name for field in dataclasses.fields(Article)) != (articles.ID_FIELD, *articles.FIELDS):
    raise RuntimeError("atelier.offline.catalog.schema.Article's fields differ from fashion.v1.Article's")


@dataclass(frozen=True, slots=True)
class Transaction:
    day: date
    customer_id: str
    article_id: str
    price: float
    sales_channel_id: int
