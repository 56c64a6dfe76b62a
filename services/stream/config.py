"""Settings of the stream app, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from atelier.config import Endpoints, env_float, env_str, state_dir
from atelier.topics import Topics


@dataclass(frozen=True)
class StreamSettings:
    endpoints: Endpoints
    topics: Topics
    app_id: str
    data_dir: Path
    # The address Faust's web server advertises (its own host name in a container).
    web_host: str
    # The local broker (Tansu) takes about half the session timeout to form a
    # group, so keep it short locally; real Kafka is fine with the default.
    session_timeout_s: float
    heartbeat_interval_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamSettings:
        env = os.environ if env is None else env
        return cls(
            endpoints=Endpoints.from_env(env),
            topics=Topics.from_env(env),
            app_id=env_str(env, "STREAM_APP_ID", "atelier-stream"),
            data_dir=Path(env_str(env, "STREAM_DATA_DIR", str(state_dir(env) / "stream"))),
            web_host=env_str(env, "STREAM_WEB_HOST", Endpoints.from_env(env).host),
            session_timeout_s=env_float(env, "STREAM_SESSION_TIMEOUT_S", 6.0),
            heartbeat_interval_s=env_float(env, "STREAM_HEARTBEAT_INTERVAL_S", 1.0),
        )
