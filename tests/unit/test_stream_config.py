"""The stream workers' settings and the topics the launcher creates for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.serving.feature_store.writer import WriterSettings
from atelier.serving.settings import Endpoints, SettingsError
from atelier.serving.topics import Topics
from services.stream.config import RetryTier, StreamSettings


def test_defaults() -> None:
    settings = StreamSettings.from_env({})
    assert (settings.app_id, settings.retry_app_id) == ("atelier-stream", "atelier-stream-retry")
    assert settings.fetch_max_wait_s == 0.05 and settings.fetch_max_wait_ms == 50
    # Kafka's own consumer defaults (session.timeout.ms, heartbeat.interval.ms): the local launcher
    # shortens them for its broker (test_the_launcher_shortens_the_group_session_for_the_local_broker).
    assert settings.session_timeout_s == 45.0 and settings.heartbeat_interval_s == 3.0
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
        ("STREAM_FETCH_MAX_WAIT_S", "-1"),
        ("STREAM_FETCH_MAX_WAIT_S", "61"),
        ("STREAM_HEARTBEAT_INTERVAL_S", "45"),
        ("STREAM_APPLY_TIMEOUT_S", "0"),
        ("STREAM_BATCH_WINDOW_S", "0"),
        ("STREAM_RETRY_BATCH_SIZE", "0"),
        ("STREAM_RETRY_BATCH_WINDOW_S", "-1"),
        ("STREAM_REDIS_TIMEOUT_S", "0"),
        ("STREAM_REDIS_CONNECT_TIMEOUT_S", "0"),
        ("STREAM_FORWARD_TIMEOUT_S", "0"),
        ("STREAM_FORWARD_BACKOFF_S", "-0.5"),
        ("STREAM_SESSION_TIMEOUT_S", "1"),
        ("STREAM_BATCH_SIZE", "many"),
        ("STREAM_RECENT_CAP", "0"),
        ("STREAM_DEDUPE_TTL_S", "0"),
        ("STREAM_GLOBAL_MAX_ITEMS", "-3"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        StreamSettings.from_env({name: value})


def test_a_bad_batch_size_fails_start_up_naming_its_variable() -> None:
    with pytest.raises(SettingsError, match=r"STREAM_BATCH_SIZE\b[^:]*: Input should be greater than 0"):
        StreamSettings.from_env({"STREAM_BATCH_SIZE": "0"})


@pytest.mark.parametrize("value", ["1,10", "1,x,3", "1,-1,3", "1,2,3,4", "nan,1,2"])
def test_retry_delays_are_three_comma_separated_numbers_of_at_least_zero(value: str) -> None:
    with pytest.raises(SettingsError, match=r"STREAM_RETRY_DELAYS_S\b[^:]*: .*three comma-separated numbers >= 0"):
        StreamSettings.from_env({"STREAM_RETRY_DELAYS_S": value})


@pytest.mark.parametrize("name", ["STREAM_FETCH_MAX_WAIT_MS", "STREAM_BATCHSIZE"])
def test_unknown_and_renamed_variables_fail_start_up(name: str) -> None:
    with pytest.raises(SettingsError, match=f"unknown setting {name}"):
        StreamSettings.from_env({name: "50"})


def test_the_writer_settings_are_no_longer_read_with_the_features_prefix() -> None:
    assert StreamSettings.from_env({"FEATURES_RECENT_CAP": "5"}).writer.recent_cap == 20
    assert StreamSettings.from_env({"STREAM_RECENT_CAP": "5"}).writer.recent_cap == 5


def test_fetch_wait_is_in_seconds() -> None:
    settings = StreamSettings.from_env({"STREAM_FETCH_MAX_WAIT_S": "0.25"})
    assert (settings.fetch_max_wait_s, settings.fetch_max_wait_ms) == (0.25, 250)
    assert StreamSettings.from_env({"STREAM_FETCH_MAX_WAIT_S": "0"}).fetch_max_wait_ms == 0
    assert StreamSettings.from_env({"STREAM_RETRY_FETCH_MAX_WAIT_S": "2"}).retry_fetch_max_wait_ms == 2000


def test_every_default_is_unchanged() -> None:
    settings = StreamSettings.from_env({"ATELIER_STATE_DIR": "/srv/state"})
    assert settings.model_dump(exclude={"writer", "endpoints", "topics", "paths", "tracing"}) == {
        "data_dir": None,
        "web_host": "",
        "session_timeout_s": 45.0,
        "heartbeat_interval_s": 3.0,
        "fetch_max_wait_s": 0.05,
        "retry_fetch_max_wait_s": 0.5,
        "metadata_max_age_s": 5.0,
        "batch_size": 500,
        "batch_window_s": 0.02,
        "retry_delays_s": (1.0, 10.0, 60.0),
        "retry_batch_size": 500,
        "retry_batch_window_s": 0.1,
        "redis_timeout_s": 0.5,
        "redis_connect_timeout_s": 0.5,
        "apply_timeout_s": 2.0,
        "forward_timeout_s": 10.0,
        "forward_backoff_s": 1.0,
    }
    assert settings.writer == WriterSettings(
        dedupe_ttl_s=7 * 86400.0,
        user_ttl_s=30 * 86400.0,
        item_ttl_s=30 * 86400.0,
        session_ttl_s=1800.0,
        recent_cap=20,
        session_cap=50,
        global_max_items=10_000,
    )
    assert settings.topics == Topics.from_env({}) and settings.endpoints == Endpoints.from_env({})
    assert settings.primary_data_dir == Path("/srv/state/stream")
    assert settings.retry_data_dir == Path("/srv/state/stream-retry")
    assert settings.advertised_web_host == settings.endpoints.host == "127.0.0.1"


def test_data_dir_and_web_host_come_from_the_environment() -> None:
    settings = StreamSettings.from_env({"STREAM_DATA_DIR": "/data/s", "STREAM_WEB_HOST": "10.0.0.7"})
    assert (settings.primary_data_dir, settings.retry_data_dir) == (Path("/data/s"), Path("/data/s-retry"))
    assert settings.advertised_web_host == "10.0.0.7"


def test_writer_settings_are_read_with_the_stream_prefix() -> None:
    env = {"STREAM_SESSION_TTL_S": "60", "STREAM_SESSION_CAP": "7", "STREAM_GLOBAL_MAX_ITEMS": "99"}
    writer = StreamSettings.from_env(env).writer
    assert (writer.session_ttl_s, writer.session_cap, writer.global_max_items) == (60.0, 7, 99)
    assert WriterSettings.from_env(env) == writer
    assert WriterSettings(recent_cap=3).recent_cap == 3  # built directly by tests and the feature store


def test_every_setting_is_documented() -> None:
    for variable in StreamSettings.variables():
        assert variable.description, variable.name


def test_launcher_creates_faust_leader_topics_with_one_partition() -> None:
    wanted = Topics().partitions_by_name()
    assert wanted["atelier-stream-__assignor-__leader"] == 1
    assert wanted["atelier-stream-retry-__assignor-__leader"] == 1
    assert all(wanted[name] == 12 for name in Topics().all())


@pytest.fixture
def stream_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The launcher's stream worker components (none of its binaries needed), as `atelier up` builds them."""
    from atelier.stack import components

    monkeypatch.setattr(components, "redis_server_binary", lambda: Path("valkey-server"))
    monkeypatch.setattr(components, "tansu_binary", lambda: Path("tansu"))
    monkeypatch.setattr(components, "envoy_command", lambda config: ["envoy", "--config-path", str(config)])

    def build() -> dict[str, dict[str, str]]:
        built = components.build_components(Endpoints.from_env({}), tmp_path)
        return {c.name: c.environment for c in built if c.name in ("stream", "stream-retry")}

    return build


def test_the_launcher_shortens_the_group_session_for_the_local_broker(
    stream_workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("STREAM_SESSION_TIMEOUT_S", "STREAM_HEARTBEAT_INTERVAL_S"):
        monkeypatch.delenv(name, raising=False)
    environments = stream_workers()
    assert set(environments) == {"stream", "stream-retry"}
    for environment in environments.values():
        settings = StreamSettings.from_env(environment)
        assert (settings.session_timeout_s, settings.heartbeat_interval_s) == (6.0, 1.0)


@pytest.mark.parametrize(("name", "value"), [("STREAM_SESSION_TIMEOUT_S", "10"), ("STREAM_HEARTBEAT_INTERVAL_S", "2")])
def test_the_launcher_keeps_a_group_timing_the_user_chose(
    name: str, value: str, stream_workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAM_SESSION_TIMEOUT_S", raising=False)
    monkeypatch.delenv("STREAM_HEARTBEAT_INTERVAL_S", raising=False)
    monkeypatch.setenv(name, value)
    for environment in stream_workers().values():
        assert not {"STREAM_SESSION_TIMEOUT_S", "STREAM_HEARTBEAT_INTERVAL_S"} & set(environment)
