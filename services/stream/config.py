"""Settings of the stream workers (primary and retry): one settings model, read at start-up.

Every STREAM_* variable belongs to the stream workers: one that no field reads fails
start-up (a typo, or a name from before a rename such as STREAM_FETCH_MAX_WAIT_MS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field, NonNegativeFloat, PositiveInt, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from atelier.serving.feature_store.writer import WriterSettings
from atelier.serving.settings import Endpoints, Settings, StatePaths, Tracing
from atelier.serving.topics import Topics

_DELAYS = "must be three comma-separated numbers >= 0 (seconds of clicks.retry.1s, .10s and .60s)"


@dataclass(frozen=True)
class RetryTier:
    """One retry topic: a record re-routed here for its `attempt`-th retry waits `delay_s` first."""

    topic: str
    delay_s: float
    attempt: int


class StreamSettings(Settings):
    """The stream workers' settings: both workers read the same ones."""

    model_config = SettingsConfigDict(env_prefix="STREAM_")
    owned_prefixes: ClassVar[tuple[str, ...]] = ("STREAM_",)

    data_dir: Path | None = None
    """Faust's data folder of the primary worker (the retry worker's is beside it, `-retry` appended);
    empty: `stream` in ATELIER_STATE_DIR."""
    web_host: str = ""
    """The host Faust's web server advertises to the group (in a container its own host name or IP);
    empty: ATELIER_HOST."""
    session_timeout_s: float = Field(45.0, gt=0)
    """Consumer group session timeout: Kafka's own default, within a real broker's bounds (6 s to
    30 min). `atelier up` sets 6 for its local broker (Tansu), which takes about half of it to form a
    group, so that a worker that stops is replaced within seconds (atelier/stack/components.py)."""
    heartbeat_interval_s: float = Field(3.0, gt=0)
    """Consumer group heartbeat interval (Kafka's default); below STREAM_SESSION_TIMEOUT_S. `atelier up`
    sets 1 for its local broker."""
    fetch_max_wait_s: float = Field(0.05, ge=0, le=60)
    """Longest one fetch waits on the broker for new records (Faust hard-codes 1.5; on Tansu a fetch
    waits that long even when records arrive, so it is most of the click-to-Redis latency)."""
    retry_fetch_max_wait_s: float = Field(0.5, ge=0, le=60)
    """Retry worker: the same wait. Its records wait a second at least (STREAM_RETRY_DELAYS_S), so it
    polls ten times less often than the primary: on the local broker each empty fetch costs CPU
    (Tansu: ~6 % of a core at 0.05, one worker, 12 partitions) that searches could use."""
    metadata_max_age_s: float = Field(5.0, gt=0)
    """Longest a worker's consumer goes without refreshing the topics' metadata (Faust's default: 300).
    Workers never auto-create topics, so a click topic recreated after a broker restart (the local
    broker keeps them in memory) is found within this time."""
    batch_size: PositiveInt = 500
    """Primary worker: most click records applied in one Redis round trip."""
    batch_window_s: float = Field(0.02, gt=0)
    """Primary worker: longest a batch waits to fill before it is applied."""
    retry_delays_s: tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat] = (1.0, 10.0, 60.0)
    """Retry worker: the delays of the retry tiers clicks.retry.1s, .10s and .60s, three
    comma-separated numbers >= 0."""
    retry_batch_size: PositiveInt = 500
    """Retry worker: most records of one tier settled in one batch."""
    retry_batch_window_s: float = Field(0.1, gt=0)
    """Retry worker: longest a tier's batch waits to fill."""
    redis_timeout_s: float = Field(0.5, gt=0)
    """Socket timeout of the Redis client's commands."""
    redis_connect_timeout_s: float = Field(0.5, gt=0)
    """Timeout of the Redis client's connection attempts."""
    apply_timeout_s: float = Field(2.0, gt=0)
    """Deadline on applying one batch to Redis; past it the batch goes to the next retry tier."""
    forward_timeout_s: float = Field(10.0, gt=0)
    """Deadline on the broker's acknowledgements of one batch of re-routed (retry, dead-letter) records."""
    forward_backoff_s: float = Field(1.0, ge=0)
    """Pause before a batch of re-routed records whose sending failed is sent again."""
    writer: WriterSettings = Field(default_factory=WriterSettings)
    endpoints: Endpoints = Field(default_factory=Endpoints)
    topics: Topics = Field(default_factory=Topics)
    paths: StatePaths = Field(default_factory=StatePaths)
    tracing: Tracing = Field(default_factory=Tracing)

    @field_validator("retry_delays_s", mode="before")
    @classmethod
    def _three_delays(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            delays = tuple(float(part) for part in value.split(","))
        except ValueError:
            raise ValueError(_DELAYS) from None
        if len(delays) != 3 or any(not delay >= 0 for delay in delays):
            raise ValueError(_DELAYS)
        return delays

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Self:
        if self.heartbeat_interval_s >= self.session_timeout_s:
            raise ValueError(
                f"STREAM_HEARTBEAT_INTERVAL_S ({self.heartbeat_interval_s}) must be below "
                f"STREAM_SESSION_TIMEOUT_S ({self.session_timeout_s})"
            )
        return self

    @model_validator(mode="after")
    def _replica_wait_within_socket_timeout(self) -> Self:
        if self.writer.replica_acks and self.writer.replica_ack_timeout_s >= self.redis_timeout_s:
            raise ValueError(
                f"STREAM_REPLICA_ACK_TIMEOUT_S ({self.writer.replica_ack_timeout_s}) must be below "
                f"STREAM_REDIS_TIMEOUT_S ({self.redis_timeout_s}): WAIT blocks the connection that long"
            )
        return self

    @property
    def app_id(self) -> str:
        """The primary worker's Faust app id (STREAM_APP_ID)."""
        return self.topics.stream_app_id

    @property
    def retry_app_id(self) -> str:
        """The retry worker's Faust app id (STREAM_RETRY_APP_ID)."""
        return self.topics.stream_retry_app_id

    @property
    def advertised_web_host(self) -> str:
        return self.web_host or self.endpoints.host

    @property
    def fetch_max_wait_ms(self) -> int:
        """STREAM_FETCH_MAX_WAIT_S in the unit aiokafka takes."""
        return round(self.fetch_max_wait_s * 1000)

    @property
    def retry_fetch_max_wait_ms(self) -> int:
        """STREAM_RETRY_FETCH_MAX_WAIT_S in the unit aiokafka takes."""
        return round(self.retry_fetch_max_wait_s * 1000)

    @property
    def primary_data_dir(self) -> Path:
        return self.data_dir or self.paths.state / "stream"

    @property
    def retry_data_dir(self) -> Path:
        return self.primary_data_dir.with_name(self.primary_data_dir.name + "-retry")

    @property
    def retry_tiers(self) -> tuple[RetryTier, ...]:
        topics = (self.topics.retry_1s, self.topics.retry_10s, self.topics.retry_60s)
        return tuple(
            RetryTier(topic, delay, attempt)
            for attempt, (topic, delay) in enumerate(zip(topics, self.retry_delays_s, strict=True), start=1)
        )
