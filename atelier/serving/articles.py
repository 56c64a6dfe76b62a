"""Builds the fashion.v1.Article message from an article's stored fields (Milvus row or Redis hash)."""

from __future__ import annotations

from collections.abc import Mapping

from fashion.v1 import article_pb2

# The attributes search filters on; the catalogue stores and shows them all.
FILTER_ATTRIBUTES = ("product_group", "product_type", "colour", "department", "index_group", "garment_group")
ARTICLE_FIELDS = ("name", *FILTER_ATTRIBUTES, "description")


def article_message(article_id: str, fields: Mapping[str, str]) -> article_pb2.Article:
    return article_pb2.Article(article_id=article_id, **{f: fields.get(f, "") for f in ARTICLE_FIELDS})
