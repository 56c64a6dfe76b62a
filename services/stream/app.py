"""The Faust app that keeps the online features in Redis current.

Agents that apply click events arrive with the click loop; until then the
worker joins the broker and serves its web endpoint, consuming nothing (a
consumer that committed offsets without applying events would lose them).
"""

from __future__ import annotations

import faust

from services.stream.config import StreamSettings

settings = StreamSettings.from_env()

app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.endpoints.broker_bootstrap}",
    datadir=str(settings.data_dir),
    web_bind=settings.endpoints.listen_host,
    web_host=settings.web_host,
    web_port=settings.endpoints.stream_web_port,
    topic_partitions=settings.topics.partitions,
    topic_allow_declare=False,
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=settings.heartbeat_interval_s,
)

clicks_topic = app.topic(settings.topics.clicks, value_serializer="raw")
