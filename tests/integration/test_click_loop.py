"""The real-time click loop end to end: Envoy -> features service -> Kafka -> Faust -> Redis -> features."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

from atelier.serving.topics import Topics
from atelier.stack.launcher import Stack
from tests.integration.support import edge


def _features(stack: Stack, user: str) -> dict:
    status, body = edge.call(stack, "GET", f"/v1/users/{user}/features")
    assert status == 200, body
    return body["userFeatures"]


def _eventually(check: Callable[[], bool], timeout_s: float, step_s: float = 0.02) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, "condition not met in time"
        time.sleep(step_s)
    return time.monotonic() - started


def _clicked(stack: Stack, user: str) -> list[str]:
    return [c["articleId"] for c in _features(stack, user).get("recentClicks", [])]


def test_a_click_shows_up_in_the_users_features(catalog: int, stack: Stack, article_ids: list[str]) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    status, body = edge.click(stack, user, article_ids[0])
    assert status == 200, body
    assert body["eventId"] and body["eventTime"]
    waited = _eventually(lambda: _clicked(stack, user) == [article_ids[0]], timeout_s=10)
    features = _features(stack, user)
    assert features["lastActiveTime"]
    assert [a["score"] for a in features["categoryAffinities"]] == [pytest.approx(1.0, abs=1e-3)]
    print(f"click visible after {waited * 1000:.0f} ms")


def test_the_same_event_id_is_applied_once(catalog: int, stack: Stack, article_ids: list[str]) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    event_id = uuid.uuid4().hex
    for _ in range(3):
        status, body = edge.click(stack, user, article_ids[1], eventId=event_id)
        assert status == 200 and body["eventId"] == event_id
    status, _ = edge.click(stack, user, article_ids[2])  # a later, different click marks the end
    _eventually(lambda: len(_clicked(stack, user)) == 2, timeout_s=10)
    time.sleep(0.5)
    assert _clicked(stack, user) == [article_ids[2], article_ids[1]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userId": "", "itemId": "0108775015"}, "click.user_id"),
        ({"userId": "u", "itemId": ""}, "click.item_id"),
        ({"userId": "u" * 200, "itemId": "0108775015"}, "click.user_id"),
        ({"userId": "u", "itemId": "0108775015", "position": -1}, "click.position"),
        ({"userId": "u", "itemId": "0108775015", "source": "television"}, "click.source"),
        ({"userId": "u", "itemId": "0108775015", "device": "fridge"}, "click.device"),
        ({"userId": "u", "itemId": "0108775015", "eventTime": "2999-01-01T00:00:00Z"}, "click.event_time"),
    ],
)
def test_bad_clicks_are_400_naming_the_field(stack: Stack, body: dict, field: str) -> None:
    payload = {"position": 0, "source": "search", "device": "web", **body}
    status, reply = edge.call(stack, "POST", "/v1/events/clicks", payload)
    assert status == 400, reply
    fields = [v["field"] for d in reply["details"] for v in d.get("fieldViolations", [])]
    assert field in fields


def test_popular_items_follow_clicks_with_the_tier_that_answered(
    catalog: int, stack: Stack, article_ids: list[str]
) -> None:
    hot = article_ids[5]
    for i in range(5):
        assert edge.click(stack, f"fan-{i}-{uuid.uuid4().hex[:6]}", hot)[0] == 200

    def hot_is_first() -> bool:
        status, body = edge.call(stack, "GET", "/v1/popular?window=POPULARITY_WINDOW_HOUR&k=3")
        return status == 200 and body["items"] and body["items"][0]["article"]["articleId"] == hot

    _eventually(hot_is_first, timeout_s=15, step_s=0.2)
    status, body = edge.call(stack, "GET", "/v1/popular?window=POPULARITY_WINDOW_HOUR&k=3")
    assert body["window"] == "POPULARITY_WINDOW_HOUR"
    assert body["items"][0]["article"]["name"]
    status, body = edge.call(stack, "GET", "/v1/popular?k=2")
    assert status == 200 and body["window"] in {"POPULARITY_WINDOW_DAY", "POPULARITY_WINDOW_WEEK"}
    assert len(body["items"]) == 2


def test_a_malformed_record_goes_to_the_dead_letter_topic_and_the_loop_goes_on(
    catalog: int, stack: Stack, article_ids: list[str]
) -> None:
    topics = Topics.from_env()
    marker = uuid.uuid4().hex
    producer = Producer({"bootstrap.servers": stack.endpoints.broker_bootstrap})
    producer.produce(topics.clicks, key=b"garbage", value=f"not json {marker}".encode())
    assert producer.flush(10) == 0
    user = f"u-{uuid.uuid4().hex[:8]}"
    assert edge.click(stack, user, article_ids[3])[0] == 200
    _eventually(lambda: _clicked(stack, user) == [article_ids[3]], timeout_s=10)
    consumer = Consumer(
        {
            "bootstrap.servers": stack.endpoints.broker_bootstrap,
            "group.id": f"dlq-check-{marker}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topics.dead_letter])
    found = None
    deadline = time.monotonic() + 30
    while found is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None and marker.encode() in message.value():
            found = message
    consumer.close()
    assert found is not None, "the malformed record did not reach the dead-letter topic"
    headers = dict(found.headers() or [])
    assert b"JSON" in headers.get("atelier-error", b"") or b"json" in headers.get("atelier-error", b"")


def test_with_the_broker_stopped_clicks_are_refused_and_none_acknowledged_is_lost(
    catalog: int, stack: Stack, article_ids: list[str]
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    acknowledged = [article_ids[10]]
    assert edge.click(stack, user, article_ids[10])[0] == 200
    stack.supervisor.signal("broker", "STOP")
    try:
        status, body = edge.click(stack, user, article_ids[11])
        assert status == 503, body
        assert "not recorded" in body["message"]
    finally:
        stack.supervisor.signal("broker", "CONT")
    _eventually(lambda: edge.click(stack, user, article_ids[12])[0] == 200, timeout_s=20, step_s=0.5)
    acknowledged.append(article_ids[12])
    _eventually(lambda: set(acknowledged) <= set(_clicked(stack, user)), timeout_s=20, step_s=0.2)


def test_with_redis_stopped_clicks_go_through_retries_and_are_applied_once(
    catalog: int, stack: Stack, article_ids: list[str]
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    stack.supervisor.signal("redis", "STOP")
    try:
        for item in article_ids[20:23]:
            assert edge.click(stack, user, item)[0] == 200
        time.sleep(2)  # the primary worker fails to apply them and re-routes them to retry.1s
    finally:
        stack.supervisor.signal("redis", "CONT")
    _eventually(lambda: len(_clicked(stack, user)) == 3, timeout_s=40, step_s=0.5)
    time.sleep(1)
    assert sorted(_clicked(stack, user)) == sorted(article_ids[20:23])
    assert sum(a["score"] for a in _features(stack, user)["categoryAffinities"]) == pytest.approx(3.0, abs=0.01)
