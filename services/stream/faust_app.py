"""The Faust app both stream workers are built on: the broker's quirks, all from settings."""

from __future__ import annotations

from pathlib import Path

import faust

from atelier.serving.tracing import configure_tracing
from services.stream.config import StreamSettings
from services.stream.internals import forbid_topic_auto_creation, install_fetch_wait


def create_app(
    app_id: str, web_port: int, data_dir: Path, settings: StreamSettings, service: str, fetch_max_wait_ms: int
) -> faust.App:
    """The worker `service` (its name in traces: atelier-<service>)."""
    # Before any client exists: its Redis client is instrumented (atelier.serving.tracing).
    configure_tracing(service, settings.tracing)
    # Topics are the launcher's to create, with their partition counts (services.stream.internals).
    forbid_topic_auto_creation()
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.endpoints.broker_bootstrap}",
        datadir=str(data_dir),
        web_bind=settings.endpoints.listen_host,
        web_host=settings.advertised_web_host,
        web_port=web_port,
        topic_partitions=settings.topics.partitions,
        # Every topic, Faust's own included, is created up front (atelier.serving.topics).
        topic_allow_declare=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        # A topic recreated after a broker restart is found at the next refresh (nothing auto-creates it).
        consumer_metadata_max_age_ms=int(settings.metadata_max_age_s * 1000),
        # ListOffsets(LATEST) is wrong on the local broker (Tansu); a new group reads from the start.
        consumer_auto_offset_reset="earliest",
        # Re-routed records must be acknowledged by every in-sync replica.
        producer_acks=-1,
        # Faust lets environment variables (WEB_PORT, BROKER_URL, ...) silently
        # override the arguments above; these settings come from StreamSettings only.
        env={},
    )
    # Faust has no setting for the consumer's fetch wait (services.stream.internals).
    install_fetch_wait(app, fetch_max_wait_ms)
    # Its /ready/ and /metrics pages: services.stream.runtime.Runtime installs them.
    return app
