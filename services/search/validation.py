"""Validation of search requests: every problem found, each naming its field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atelier.serving.click_event import MAX_ID_CHARS
from atelier.serving.rpc import FieldViolation, InvalidArgument
from fashion.v1 import article_pb2
from services.search.image_validation import CheckedImage

# ArticleFilter field -> article attribute (Milvus field).
FILTER_FIELDS = {
    "product_groups": "product_group",
    "product_types": "product_type",
    "colours": "colour",
    "departments": "department",
    "index_groups": "index_group",
    "garment_groups": "garment_group",
}
MAX_FILTER_VALUES = 50


@dataclass(frozen=True)
class TextQuery:
    query: str
    k: int
    user_id: str
    filters: dict[str, list[str]]


@dataclass(frozen=True)
class ImageQuery:
    image: bytes
    k: int
    user_id: str
    filters: dict[str, list[str]]


@dataclass(frozen=True)
class HybridQuery:
    query: str
    image: bytes | None
    k: int
    user_id: str
    filters: dict[str, list[str]]


def validate_k(k: int, default_k: int, max_k: int, violations: list[FieldViolation]) -> int:
    if k == 0:
        return default_k
    if not 1 <= k <= max_k:
        violations.append(FieldViolation("k", f"must be between 1 and {max_k}, got {k}"))
    return k


def validate_filter(
    article_filter: article_pb2.ArticleFilter,
    known_values: Mapping[str, Mapping[str, str]] | None,
    violations: list[FieldViolation],
) -> dict[str, list[str]]:
    """Maps the filter onto attribute -> canonical values.

    `known_values` maps an attribute to {lower-cased value: canonical value};
    values match case-insensitively. None means the catalogue's values are not
    known right now: values pass through unchecked rather than failing search.
    """
    filters: dict[str, list[str]] = {}
    for field, attribute in FILTER_FIELDS.items():
        values = list(getattr(article_filter, field))
        if not values:
            continue
        if len(values) > MAX_FILTER_VALUES:
            violations.append(FieldViolation(f"filter.{field}", f"at most {MAX_FILTER_VALUES} values"))
            continue
        canonical = []
        for value in values:
            if not value.strip():
                violations.append(FieldViolation(f"filter.{field}", "values must not be empty"))
            elif known_values is None:
                canonical.append(value.strip())
            elif (match := known_values.get(attribute, {}).get(value.strip().lower())) is not None:
                canonical.append(match)
            else:
                violations.append(FieldViolation(f"filter.{field}", f"unknown value {value!r}"))
        filters[attribute] = canonical
    return filters


def _query_text(query: str, max_query_chars: int, violations: list[FieldViolation]) -> str:
    text = " ".join(query.split())
    if not text:
        violations.append(FieldViolation("query", "must not be empty"))
    elif len(text) > max_query_chars:
        violations.append(FieldViolation("query", f"must be at most {max_query_chars} characters, got {len(text)}"))
    return text


def _user_id(user_id: str, violations: list[FieldViolation]) -> str:
    if len(user_id) > MAX_ID_CHARS:
        violations.append(FieldViolation("user_id", f"must be at most {MAX_ID_CHARS} characters"))
    return user_id


def _image(checked: CheckedImage | FieldViolation, violations: list[FieldViolation]) -> bytes:
    if isinstance(checked, FieldViolation):
        violations.append(checked)
        return b""
    return checked.data


def validate_text_request(
    query: str,
    k: int,
    user_id: str,
    article_filter: article_pb2.ArticleFilter,
    *,
    default_k: int,
    max_k: int,
    max_query_chars: int,
    known_values: Mapping[str, Mapping[str, str]] | None,
) -> TextQuery:
    violations: list[FieldViolation] = []
    text = _query_text(query, max_query_chars, violations)
    k = validate_k(k, default_k, max_k, violations)
    user_id = _user_id(user_id, violations)
    filters = validate_filter(article_filter, known_values, violations)
    if violations:
        raise InvalidArgument(violations)
    return TextQuery(text, k, user_id, filters)


def validate_image_request(
    image: CheckedImage | FieldViolation,
    k: int,
    user_id: str,
    article_filter: article_pb2.ArticleFilter,
    *,
    default_k: int,
    max_k: int,
    known_values: Mapping[str, Mapping[str, str]] | None,
) -> ImageQuery:
    """`image` is services.search.image_validation.check_image's verdict on the request's photo."""
    violations: list[FieldViolation] = []
    data = _image(image, violations)
    k = validate_k(k, default_k, max_k, violations)
    user_id = _user_id(user_id, violations)
    filters = validate_filter(article_filter, known_values, violations)
    if violations:
        raise InvalidArgument(violations)
    return ImageQuery(data, k, user_id, filters)


def validate_hybrid_request(
    query: str,
    image: CheckedImage | FieldViolation | None,
    k: int,
    user_id: str,
    article_filter: article_pb2.ArticleFilter,
    *,
    default_k: int,
    max_k: int,
    max_query_chars: int,
    known_values: Mapping[str, Mapping[str, str]] | None,
) -> HybridQuery:
    """`image`: check_image's verdict on the photo, None when the request has none (it is optional)."""
    violations: list[FieldViolation] = []
    text = _query_text(query, max_query_chars, violations)
    data = None if image is None else _image(image, violations)
    k = validate_k(k, default_k, max_k, violations)
    user_id = _user_id(user_id, violations)
    filters = validate_filter(article_filter, known_values, violations)
    if violations:
        raise InvalidArgument(violations)
    return HybridQuery(text, data, k, user_id, filters)
