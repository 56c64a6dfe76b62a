"""fashion.v1.EventsService: validates clicks and publishes them to the clicks topic.

A click must name an article of the catalogue (`item:{article_id}` in Redis). If
Redis cannot answer that question (down, or slower than FEATURES_REDIS_TIMEOUT_S),
the click is accepted all the same once the broker acknowledged it: RecordClick's
promise is that an acknowledged click is kept, and Redis being down must not lose
clicks the broker could keep. The check here is the client's clear answer; the
guarantee is the stream's: apply_clicks.lua drops a click on an unknown article
(checked when Redis is back), so it never reaches popularity either way.
"""

from __future__ import annotations

import logging
import time
import uuid

import grpc
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter

from atelier.serving import item_store
from atelier.serving.click_event import ClickRecord
from atelier.serving.rpc import FieldViolation, InvalidArgument, abort_invalid_argument
from fashion.v1 import events_service_pb2 as pb
from fashion.v1 import events_service_pb2_grpc as pb_grpc
from services.features.publisher import ClickPublisher, PublishError

log = logging.getLogger(__name__)

# A client clock this far ahead is wrong, not early.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
CATALOGUE_UNCHECKED = Counter(
    "features_clicks_catalogue_unchecked_total",
    "Clicks accepted without the catalogue check because Redis did not answer (the stream checks them).",
)


def click_record(click: pb.ClickEvent, now_ms: int) -> ClickRecord:
    """The record to publish; raises InvalidArgument naming every bad field."""
    event_time_ms = click.event_time.ToMilliseconds() if click.HasField("event_time") else now_ms
    record = ClickRecord(
        event_id=click.event_id or uuid.uuid4().hex,
        user_id=click.user_id,
        item_id=click.item_id,
        position=click.position,
        source=click.source,
        device=click.device,
        event_time_ms=event_time_ms,
        query=click.query,
        session_id=click.session_id,
    )
    violations = [FieldViolation(f"click.{field}", reason) for field, reason in record.problems()]
    if event_time_ms > now_ms + MAX_CLOCK_SKEW_MS:
        violations.append(FieldViolation("click.event_time", "must not be in the future"))
    if violations:
        raise InvalidArgument(violations)
    return record


async def check_catalogue(redis: aioredis.Redis, record: ClickRecord) -> None:
    """Raises InvalidArgument when the clicked article is not in the catalogue; passes when Redis cannot tell."""
    try:
        known = await item_store.item_exists(redis, record.item_id)
    except (aioredis.RedisError, OSError, TimeoutError) as error:
        # Accepted unchecked (see the module's docstring): the stream drops it if the article is unknown.
        CATALOGUE_UNCHECKED.inc()
        log.warning("catalogue check skipped: redis unavailable", extra={"error": str(error)})
        return
    if not known:
        raise InvalidArgument([FieldViolation("click.item_id", f"no article {record.item_id} in the catalogue")])


class EventsServicer(pb_grpc.EventsServiceServicer):
    def __init__(self, publisher: ClickPublisher, redis: aioredis.Redis) -> None:
        self._publisher = publisher
        self._redis = redis

    async def RecordClick(
        self, request: pb.RecordClickRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordClickResponse:
        try:
            record = click_record(request.click, int(time.time() * 1000))
            await check_catalogue(self._redis, record)
        except InvalidArgument as error:
            await abort_invalid_argument(context, error)
        try:
            await self._publisher.publish(record)
        except PublishError as error:
            # Not acknowledged: the client may retry with the same event id (applied once).
            # PublishError's text is librdkafka's description, never an exception class.
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"click {record.event_id} not recorded: {error}")
        event_time = Timestamp()
        event_time.FromMilliseconds(record.event_time_ms)
        return pb.RecordClickResponse(event_id=record.event_id, event_time=event_time)
