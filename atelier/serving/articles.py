"""The article's fields, all taken from the proto descriptor of fashion.v1.Article (and ArticleFilter).

Everything that lists an article's fields reads them here: the Milvus schema and its output
fields (atelier.serving.article_index), the Redis item hashes (atelier.serving.item_store), the
search filters (services/search/validation.py), the passage text that is embedded and reranked,
and the catalogue's Article record (atelier/offline/catalog/schema.py, checked by a test).
"""

from __future__ import annotations

from collections.abc import Mapping

from fashion.v1 import article_pb2

ID_FIELD = "article_id"
# Every field but the id, in the proto's order.
FIELDS: tuple[str, ...] = tuple(field.name for field in article_pb2.Article.DESCRIPTOR.fields if field.name != ID_FIELD)


def _filters() -> dict[str, str]:
    """ArticleFilter field -> the Article field it restricts: `colours` restricts `colour`, and so on."""
    filters = {}
    for field in article_pb2.ArticleFilter.DESCRIPTOR.fields:
        attribute = field.name.removesuffix("s")
        if attribute not in FIELDS:
            raise RuntimeError(f"ArticleFilter.{field.name} names no Article field ({attribute!r})")
        filters[field.name] = attribute
    return filters


FILTERS: dict[str, str] = _filters()
# The attributes search filters on (Milvus scalar fields, the catalogue's known values).
FILTER_FIELDS: tuple[str, ...] = tuple(FILTERS.values())
# The fields a result shows but nobody filters on.
DISPLAY_FIELDS: tuple[str, ...] = tuple(field for field in FIELDS if field not in FILTER_FIELDS)
# The category personalisation counts affinity for.
CATEGORY_FIELD = "product_type"
if CATEGORY_FIELD not in FILTER_FIELDS or not {"name", "description"} <= set(DISPLAY_FIELDS):
    raise RuntimeError("fashion.v1.Article lost a field the passage text is built from")


def article_message(article_id: str, fields: Mapping[str, str]) -> article_pb2.Article:
    return article_pb2.Article(article_id=article_id, **{f: fields.get(f, "") for f in FIELDS})


def category(fields: Mapping[str, str]) -> str:
    return fields.get(CATEGORY_FIELD, "")


# The passage leads with "<colour> <type>", the words shoppers search with.
HEAD_FIELDS = ("colour", CATEGORY_FIELD)


def passage(fields: Mapping[str, str]) -> str:
    """The text we embed and rerank: the name, "<colour> <type>", the other filter attributes, the description.

    Attributes that repeat an earlier one (a department called "Trousers" for trousers) are left
    out, so the passage stays short; the order never varies, so its hash is stable.
    """
    name, description = fields.get("name", ""), fields.get("description", "")
    head = " ".join(fields.get(field, "") for field in HEAD_FIELDS).strip()
    seen = {name.casefold(), category(fields).casefold(), head.casefold()}
    attributes = [head] if head else []
    for field in FILTER_FIELDS:
        value = fields.get(field, "")
        if field not in HEAD_FIELDS and value and value.casefold() not in seen:
            seen.add(value.casefold())
            attributes.append(value)
    parts = [name, ", ".join(attributes), description]
    return ". ".join(part.rstrip(". ") for part in parts if part) + "."
