"""Where every component listens, read from the environment in one place.

The launcher and the services read the same variables, so a port changed for
one is seen by all. Each default is a conventional local port; setting
ATELIER_PORT_OFFSET shifts every default at once (the test stack uses it to run
beside a developer's stack).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


@dataclass(frozen=True)
class Endpoints:
    """Where every component of the stack listens and how peers reach it.

    Each field is read from ATELIER_<FIELD> (for example ATELIER_ENVOY_PORT,
    ATELIER_REDIS_HOST). Locally everything is on one loopback host; in
    containers servers bind ATELIER_BIND_HOST (0.0.0.0) and reach each peer by
    its own host name.
    """

    host: str = "127.0.0.1"
    # Empty host fields default to `host`.
    bind_host: str = ""
    search_host: str = ""
    ranker_host: str = ""
    features_host: str = ""
    redis_host: str = ""
    broker_host: str = ""
    milvus_host: str = ""
    triton_host: str = ""
    envoy_port: int = 8080
    envoy_admin_port: int = 9901
    search_port: int = 50051
    ranker_port: int = 50052
    features_port: int = 50053
    search_metrics_port: int = 9464
    ranker_metrics_port: int = 9465
    features_metrics_port: int = 9466
    stream_web_port: int = 6066
    stream_retry_web_port: int = 6067
    redis_port: int = 6379
    broker_port: int = 9092
    milvus_port: int = 19530
    triton_grpc_port: int = 8001
    triton_http_port: int = 8000
    triton_metrics_port: int = 8002

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Endpoints:
        env = os.environ if env is None else env
        offset = env_int(env, "ATELIER_PORT_OFFSET", 0)
        host = env_str(env, "ATELIER_HOST", cls.host)
        values: dict[str, str | int] = {}
        for field in fields(cls):
            name = f"ATELIER_{field.name.upper()}"
            if field.type == "int":
                values[field.name] = env_int(env, name, field.default + offset)
            else:
                values[field.name] = env_str(env, name, host)
        return cls(**values)  # type: ignore[arg-type]

    def address(self, port: int) -> str:
        """host:port on the local stack's host (the launcher, local tools and tests)."""
        return f"{self.host}:{port}"

    @staticmethod
    def _join(host: str, port: int) -> str:
        return f"{host}:{port}"

    @property
    def search_address(self) -> str:
        return self._join(self.search_host or self.host, self.search_port)

    @property
    def ranker_address(self) -> str:
        return self._join(self.ranker_host or self.host, self.ranker_port)

    @property
    def features_address(self) -> str:
        return self._join(self.features_host or self.host, self.features_port)

    @property
    def triton_address(self) -> str:
        return self._join(self.triton_host or self.host, self.triton_grpc_port)

    @property
    def milvus_uri(self) -> str:
        return f"http://{self._join(self.milvus_host or self.host, self.milvus_port)}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self._join(self.redis_host or self.host, self.redis_port)}/0"

    @property
    def broker_bootstrap(self) -> str:
        return self._join(self.broker_host or self.host, self.broker_port)

    @property
    def edge_url(self) -> str:
        """Envoy's REST address, as a local client reaches it."""
        return f"http://{self.address(self.envoy_port)}"

    @property
    def edge_grpc_address(self) -> str:
        """Envoy's address for gRPC clients (the same listener as REST)."""
        return self.address(self.envoy_port)

    @property
    def listen_host(self) -> str:
        return self.bind_host or self.host


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """The folder holding the local stack's logs, pid files and data."""
    env = os.environ if env is None else env
    return Path(env_str(env, "ATELIER_STATE_DIR", str(ROOT / ".atelier"))).resolve()


@dataclass(frozen=True)
class ServerSettings:
    """Settings every gRPC service shares (see atelier.serving.grpc_server)."""

    log_level: str = "INFO"
    # Seconds in-flight calls get to finish after SIGTERM.
    shutdown_grace_s: float = 10.0
    # Calls worked on at once; more are refused with RESOURCE_EXHAUSTED (see atelier.serving.admission).
    max_in_flight: int = 64
    # OpenTelemetry span exporter: "none", "console" or "otlp".
    traces_exporter: str = "none"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env
        max_in_flight = env_int(env, "ATELIER_MAX_IN_FLIGHT", cls.max_in_flight)
        if max_in_flight < 1:
            raise ValueError(f"ATELIER_MAX_IN_FLIGHT must be at least 1, got {max_in_flight}")
        exporter = env_str(env, "OTEL_TRACES_EXPORTER", cls.traces_exporter).lower()
        if exporter not in {"none", "console", "otlp"}:
            raise ValueError(f"OTEL_TRACES_EXPORTER must be none, console or otlp, got {exporter!r}")
        return cls(
            log_level=env_str(env, "ATELIER_LOG_LEVEL", cls.log_level).upper(),
            shutdown_grace_s=env_float(env, "ATELIER_SHUTDOWN_GRACE_S", cls.shutdown_grace_s),
            max_in_flight=max_in_flight,
            traces_exporter=exporter,
        )
