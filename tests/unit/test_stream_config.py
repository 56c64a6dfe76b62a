"""The stream workers' settings and the topics the launcher creates for them."""

from __future__ import annotations

import pytest

from atelier.serving.topics import Topics
from services.stream.config import RetryTier, StreamSettings


def test_defaults_suit_the_local_broker() -> None:
    settings = StreamSettings.from_env({})
    assert (settings.app_id, settings.retry_app_id) == ("atelier-stream", "atelier-stream-retry")
    assert settings.fetch_max_wait_ms == 50
    assert settings.session_timeout_s == 6.0 and settings.heartbeat_interval_s == 1.0
    assert settings.endpoints.stream_retry_web_port == 6067
    assert settings.retry_tiers == (
        RetryTier("clicks.retry.1s", 1.0, 1),
        RetryTier("clicks.retry.10s", 10.0, 2),
        RetryTier("clicks.retry.60s", 60.0, 3),
    )


def test_retry_delays_and_app_ids_come_from_the_environment() -> None:
    settings = StreamSettings.from_env(
        {"STREAM_RETRY_DELAYS_S": "0.5, 1,2", "STREAM_APP_ID": "a", "STREAM_RETRY_APP_ID": "b"}
    )
    assert [tier.delay_s for tier in settings.retry_tiers] == [0.5, 1.0, 2.0]
    assert set(settings.topics.faust_internal()) == {"a-__assignor-__leader", "b-__assignor-__leader"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STREAM_RETRY_DELAYS_S", "1,10"),
        ("STREAM_RETRY_DELAYS_S", "1,x,3"),
        ("STREAM_BATCH_SIZE", "0"),
        ("STREAM_FETCH_MAX_WAIT_MS", "-1"),
        ("STREAM_HEARTBEAT_INTERVAL_S", "7"),
        ("STREAM_APPLY_TIMEOUT_S", "0"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        StreamSettings.from_env({name: value})


def test_launcher_creates_faust_leader_topics_with_one_partition() -> None:
    wanted = Topics().partitions_by_name()
    assert wanted["atelier-stream-__assignor-__leader"] == 1
    assert wanted["atelier-stream-retry-__assignor-__leader"] == 1
    assert all(wanted[name] == 4 for name in Topics().all())
