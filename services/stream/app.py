"""The primary stream worker: applies click records from the clicks topic to Redis, in batches.

Each batch is settled before it is acknowledged (see services.stream.acks):
valid clicks are applied in one atomic Lua call (ClickWriter); an invalid record
goes to the dead-letter topic; when the apply fails, every click of the batch
goes to the first retry tier (services.stream.retry runs the tiers).
"""

from __future__ import annotations

import faust
from faust.types import StreamT

from services.stream.acks import acked_once_settled
from services.stream.config import StreamSettings
from services.stream.faust_app import create_app
from services.stream.records import incoming
from services.stream.runtime import Runtime

settings = StreamSettings.from_env()
app: faust.App = create_app(
    settings.app_id,
    settings.endpoints.stream_web_port,
    settings.primary_data_dir,
    settings,
    "stream",
    settings.fetch_max_wait_ms,
)
clicks_topic = app.topic(settings.topics.clicks, key_serializer="raw", value_serializer="raw")
runtime = Runtime(app, settings)


@app.agent(clicks_topic, name="apply-clicks")
async def apply_clicks(stream: StreamT) -> None:
    # noack_take yields the events (their headers, traceparent, are forwarded) and acknowledges none.
    async for events in stream.noack_take(settings.batch_size, within=settings.batch_window_s):
        async with acked_once_settled(stream, events, runtime.crash):
            await runtime.handler().handle([incoming(event) for event in events], attempt=0)
