"""Settings of the edge: the key file, per-key rate limits, and the limits Envoy applies."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveFloat, PositiveInt
from pydantic_settings import SettingsConfigDict

from atelier.serving.settings import Endpoints, Settings, state_dir

API_KEY_HEADER = "x-api-key"
"""The request header (gRPC metadata) carrying a caller's API key."""
KEY_NAME_HEADER = "x-atelier-key-name"
"""The header the authorization service names the caller's key in (Envoy logs it, upstreams see it)."""
DEV_KEY_NAME = "dev"
DEV_KEY_FILE = "dev-api-key"


class KeyFileSettings(Settings):
    """Where the API keys are kept (hashed): read by the authorization service, written by `atelier keys`."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_")

    api_keys_file: Path | None = None
    """The key file (JSON: each key's name, SHA-256, creation time and rate limits; a secret in k8s);
    default: api-keys.json in the state folder."""

    def path(self, state: Path | None = None) -> Path:
        """The key file: the one chosen, else api-keys.json in `state` (default: the state folder)."""
        return (self.api_keys_file or (state or state_dir()) / "api-keys.json").expanduser().resolve()


class ClientKeySettings(Settings):
    """The API key our own clients (tests, benchmarks, `atelier eval`) send to the edge."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_")

    api_key: str | None = None
    """The API key clients of the edge send; default: the local dev key, `.atelier/dev-api-key`,
    which `atelier up` creates."""


class RateLimitSettings(Settings):
    """The default rate limit of a key (a key may carry its own: `atelier keys create NAME --rate R --burst B`)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_EDGE_")

    rate_per_s: PositiveFloat = 50.0
    """Requests per second a key may make, on average (token bucket refill)."""
    burst: PositiveInt = 100
    """Requests a key may make at once (token bucket size)."""


class EdgeAuthSettings(Settings):
    """The authorization service (`python -m atelier.edge.authz`) Envoy's ext_authz filter calls."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_EDGE_")

    endpoints: Endpoints = Field(default_factory=Endpoints)
    keys: KeyFileSettings = Field(default_factory=KeyFileSettings)
    rate: RateLimitSettings = Field(default_factory=RateLimitSettings)


class EnvoyLimits(Settings):
    """Limits Envoy applies at the edge (rendered into envoy.yaml)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_EDGE_")

    max_request_bytes: PositiveInt = 8 * 1024 * 1024
    """Largest REST request body (bytes); a larger one is refused with 413 (gRPC messages: each service's limit)."""
    request_headers_timeout_s: PositiveFloat = 10.0
    """Time a client has to send a request's headers; a client trickling them is cut off."""
    request_timeout_s: PositiveFloat = 60.0
    """Time a client has to send a whole request (headers and body)."""
    stream_idle_timeout_s: PositiveFloat = 60.0
    """A request with no activity in either direction for this long is ended."""
    idle_timeout_s: PositiveFloat = 300.0
    """A client connection with no request for this long is closed."""
    max_connections: PositiveInt = 4096
    """Client connections Envoy holds at once (all listeners); more are refused."""
    auth_timeout_s: PositiveFloat = 0.5
    """How long Envoy waits for the authorization service; past it (or with it down) requests answer 503."""
