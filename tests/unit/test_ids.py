"""The id alphabet (atelier.serving.ids) and every request validation that applies it."""

from __future__ import annotations

import pytest

from atelier.serving.click_event import ClickRecord
from atelier.serving.ids import MAX_ID_CHARS, id_problem, is_valid_id
from atelier.serving.rpc import InvalidArgument
from fashion.v1 import events_service_pb2 as events_pb
from fashion.v1 import ranker_service_pb2 as ranker_pb
from fashion.v1 import search_service_pb2 as search_pb
from services.features.events import click_record
from services.ranker.validation import validate_rank_request
from services.search.config import RequestLimits
from services.search.validation import validate_request

NOW_MS = 1_767_225_600_000


@pytest.mark.parametrize(
    "value",
    [
        "0108775015",  # H&M and synthetic article ids
        "00000dbacae5abe5e23885899a1fa44253a17956c6d1c3d25f88aa139fdfc657",  # an H&M customer id
        "3f2b8c1e-9a4d-4c5e-8f00-1b2c3d4e5f60",  # a UUID
        "a.b_c@example-shop.com",
        "u" * MAX_ID_CHARS,
    ],
)
def test_ids_of_the_catalogues_and_clients_pass(value: str) -> None:
    assert id_problem(value) is None and is_valid_id(value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ("u" * (MAX_ID_CHARS + 1), "at most"),
        ("0117860004:clicks", "may contain only"),  # would name item:0117860004:clicks
        ("a|1", "may contain only"),
        ("with space", "may contain only"),
        ("tab\t", "may contain only"),
        ("new\n", "may contain only"),
        ("*", "may contain only"),
        ("ünïcode", "may contain only"),
    ],
)
def test_ids_that_could_name_other_keys_are_refused(value: str, problem: str) -> None:
    assert problem in (id_problem(value) or "")


def test_an_optional_id_may_be_empty() -> None:
    assert id_problem("", required=False) is None
    assert id_problem(":", required=False)


def _click(**fields: str) -> events_pb.ClickEvent:
    return events_pb.ClickEvent(
        **{"event_id": "e1", "user_id": "u1", "item_id": "0108775015", "source": "search", "device": "web", **fields}
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"user_id": "u1:recent"}, "click.user_id"),
        ({"item_id": "0117860004:clicks"}, "click.item_id"),
        ({"session_id": "s:1"}, "click.session_id"),
        ({"event_id": "e 1"}, "click.event_id"),
    ],
)
def test_record_click_names_the_bad_id(fields: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        click_record(_click(**fields), NOW_MS)
    assert [v.field for v in raised.value.violations] == [field]


def test_the_stream_refuses_a_record_with_a_bad_id_too() -> None:
    record = ClickRecord("e1", "u1", "a:b", 0, "search", "web", NOW_MS)
    assert record.problems() == [("item_id", "may contain only letters, digits and . _ @ -")]


def test_search_refuses_a_user_id_with_a_colon() -> None:
    request = search_pb.SearchTextRequest(query="jeans", user_id="u1:affinity")
    with pytest.raises(InvalidArgument) as raised:
        validate_request(request, RequestLimits(), None)
    assert [v.field for v in raised.value.violations] == ["user_id"]


def test_ranker_refuses_ids_with_a_colon() -> None:
    request = ranker_pb.RankRequest(
        user_id="u:1",
        candidates=[ranker_pb.RankCandidate(article_id="a:clicks", category="Dress", score=1.0)],
    )
    with pytest.raises(InvalidArgument) as raised:
        validate_rank_request(request, 100)
    assert [v.field for v in raised.value.violations] == ["user_id", "candidates[0].article_id"]
