"""Settings of the stream workers (primary and retry), read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from atelier.serving.config import env_float, env_int, env_str
from atelier.serving.settings import Endpoints, state_dir
from atelier.serving.topics import Topics


@dataclass(frozen=True)
class RetryTier:
    """One retry topic: a record re-routed here for its `attempt`-th retry waits `delay_s` first."""

    topic: str
    delay_s: float
    attempt: int


@dataclass(frozen=True)
class StreamSettings:
    endpoints: Endpoints
    topics: Topics
    # Faust app ids (consumer groups); their internal topics come from atelier.serving.topics.
    app_id: str
    retry_app_id: str
    data_dir: Path
    # The address Faust's web server advertises (its own host name in a container).
    web_host: str
    # The local broker (Tansu) takes about half the session timeout to form a
    # group, so keep it short locally; real Kafka is fine with the default.
    session_timeout_s: float
    heartbeat_interval_s: float
    # How long one fetch may wait on the broker for new records. Faust hard-codes
    # 1.5 s; on Tansu a fetch waits that long even when records arrive, so it is
    # most of the click-to-Redis latency (p50 ~550 ms vs ~20-35 ms at 50 ms).
    fetch_max_wait_ms: int
    # Primary worker: events per Redis round trip, and how long a batch may fill.
    batch_size: int
    batch_window_s: float
    # Retry worker: delay of each tier (clicks.retry.1s/10s/60s), its batches.
    retry_delays_s: tuple[float, float, float]
    retry_batch_size: int
    retry_batch_window_s: float
    # Redis: socket timeouts of the client and a deadline on one batch's apply.
    redis_timeout_s: float
    redis_connect_timeout_s: float
    apply_timeout_s: float
    # Re-routing (retry and dead-letter records): a deadline on the broker's
    # acknowledgements of one batch, and the pause before sending it again.
    forward_timeout_s: float
    forward_backoff_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamSettings:
        env = os.environ if env is None else env
        endpoints = Endpoints.from_env(env)
        topics = Topics.from_env(env)
        settings = cls(
            endpoints=endpoints,
            topics=topics,
            app_id=topics.stream_app_id,
            retry_app_id=topics.stream_retry_app_id,
            data_dir=Path(env_str(env, "STREAM_DATA_DIR", str(state_dir(env) / "stream"))),
            web_host=env_str(env, "STREAM_WEB_HOST", endpoints.host),
            session_timeout_s=env_float(env, "STREAM_SESSION_TIMEOUT_S", 6.0),
            heartbeat_interval_s=env_float(env, "STREAM_HEARTBEAT_INTERVAL_S", 1.0),
            fetch_max_wait_ms=env_int(env, "STREAM_FETCH_MAX_WAIT_MS", 50),
            batch_size=env_int(env, "STREAM_BATCH_SIZE", 500),
            batch_window_s=env_float(env, "STREAM_BATCH_WINDOW_S", 0.02),
            retry_delays_s=_delays(env, "STREAM_RETRY_DELAYS_S", (1.0, 10.0, 60.0)),
            retry_batch_size=env_int(env, "STREAM_RETRY_BATCH_SIZE", 500),
            retry_batch_window_s=env_float(env, "STREAM_RETRY_BATCH_WINDOW_S", 0.1),
            redis_timeout_s=env_float(env, "STREAM_REDIS_TIMEOUT_S", 0.5),
            redis_connect_timeout_s=env_float(env, "STREAM_REDIS_CONNECT_TIMEOUT_S", 0.5),
            apply_timeout_s=env_float(env, "STREAM_APPLY_TIMEOUT_S", 2.0),
            forward_timeout_s=env_float(env, "STREAM_FORWARD_TIMEOUT_S", 10.0),
            forward_backoff_s=env_float(env, "STREAM_FORWARD_BACKOFF_S", 1.0),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.batch_size < 1 or self.retry_batch_size < 1:
            raise ValueError("STREAM_BATCH_SIZE and STREAM_RETRY_BATCH_SIZE must be at least 1")
        if self.batch_window_s <= 0 or self.retry_batch_window_s <= 0:
            raise ValueError("STREAM_BATCH_WINDOW_S and STREAM_RETRY_BATCH_WINDOW_S must be positive")
        if not 0 <= self.fetch_max_wait_ms <= 60_000:
            raise ValueError("STREAM_FETCH_MAX_WAIT_MS must be within 0..60000")
        if self.heartbeat_interval_s >= self.session_timeout_s:
            raise ValueError("STREAM_HEARTBEAT_INTERVAL_S must be below STREAM_SESSION_TIMEOUT_S")
        for name in ("redis_timeout_s", "redis_connect_timeout_s", "apply_timeout_s", "forward_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"STREAM_{name.upper()} must be positive")
        if self.forward_backoff_s < 0:
            raise ValueError("STREAM_FORWARD_BACKOFF_S must be >= 0")

    @property
    def retry_tiers(self) -> tuple[RetryTier, ...]:
        topics = (self.topics.retry_1s, self.topics.retry_10s, self.topics.retry_60s)
        return tuple(
            RetryTier(topic, delay, attempt)
            for attempt, (topic, delay) in enumerate(zip(topics, self.retry_delays_s, strict=True), start=1)
        )

    @property
    def retry_data_dir(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + "-retry")


def _delays(env: Mapping[str, str], name: str, default: tuple[float, float, float]) -> tuple[float, float, float]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ValueError(f"{name} must be three comma-separated numbers, got {raw!r}") from None
    if len(values) != 3 or any(value < 0 for value in values):
        raise ValueError(f"{name} must be three comma-separated numbers >= 0, got {raw!r}")
    return values  # type: ignore[return-value]
