"""Settings of the local launcher (`atelier up`) and of `atelier models`: which Triton models it
loads, where their versions live, and where first versions come from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from atelier.serving.settings import Settings, state_dir
from atelier.stack.replicas import MAX_REPLICAS, REPLICATED

# The local stack's Redis cluster: primaries it may have (atelier.stack.redis_cluster).
MIN_PRIMARIES, MAX_PRIMARIES = 3, 8


class LauncherSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="ATELIER_")

    triton_models: str | None = None
    """Comma-separated Triton models to load (default: every model of triton_models/ with a version to serve)."""
    model_repository: Path | None = None
    """The runtime Triton model repository, numbered versions of each model with their weights and
    records (default: model_repository/ in the state folder)."""
    triton_instance_kind: Literal["cpu", "gpu"] = "cpu"
    """Where every model's instances run: cpu, or gpu (KIND_GPU: CUDA, fp16 by default)."""
    rerank_model_dir: Path | None = None
    """Where the reranker's first version comes from when the repository has none (any
    sequence-classification cross-encoder, BAAI/bge-reranker-base in production; default:
    models/reranker, which `atelier models train-reranker` writes). Later ones: `atelier models publish`."""
    clip_model_dir: Path | None = None
    """Where the CLIP towers' first version comes from when the repository has none
    (openai/clip-vit-base-patch32 in production; default: models/clip, which `atelier models
    train-clip` writes). Later ones: `atelier models publish`."""

    first_run_training: bool = True
    """On a stack with no reranker or CLIP version, train them in the background (recipes sized to the
    demo catalogue) and publish them, so every search feature comes on after `make up` (0: off)."""
    prometheus_enabled: bool = True
    """Start Prometheus (ATELIER_PROMETHEUS_PORT) and the Redis exporter with the stack, with the rules of
    deploy/prometheus/rules.yml (0: off). Both come from Debian's packages, unpacked into build/tools/."""
    stream_workers: int = Field(1, ge=1, le=10)
    """Primary stream workers (`stream`, `stream-2`, ...): one consumer group sharing the click topics'
    partitions (ATELIER_TOPIC_PARTITIONS), each with its own Faust web port (ATELIER_STREAM_WEB_PORT,
    then 100 above it per worker) and data folder; more workers than partitions sit idle."""
    search_replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    """Search services the local stack runs (search, search-2, ...: ports in atelier/stack/replicas.py),
    all behind Envoy, which balances and health-checks them."""
    ranker_replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    """Ranker services the local stack runs (ranker, ranker-2, ...); search balances its calls over them."""
    features_replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    """Features services the local stack runs (features, features-2, ...); Envoy and search balance over them."""
    redis_cluster_primaries: int = 0
    """0: one Redis (Valkey) server. 3 to 8: a Valkey cluster of that many primaries, each with a replica
    (programs redis, redis-2, ... on ATELIER_REDIS_PORT and the ports above it: atelier/stack/redis_cluster.py),
    formed by the one-shot redis-cluster; every client then uses the cluster client (ATELIER_REDIS_CLUSTER
    defaults to on)."""
    models_switch_grace_s: float = 6.0
    """How long `atelier models publish` and `rollback` keep the version an index switch leaves behind
    loaded: longer than search takes to notice the switch (SEARCH_INDEX_REFRESH_S)."""

    @field_validator("redis_cluster_primaries")
    @classmethod
    def _cluster_size(cls, primaries: int) -> int:
        if primaries != 0 and not MIN_PRIMARIES <= primaries <= MAX_PRIMARIES:
            raise ValueError(
                f"0 (a single Redis) or {MIN_PRIMARIES} to {MAX_PRIMARIES} primaries "
                f"(a cluster needs at least {MIN_PRIMARIES} to elect a replica in a primary's place)"
            )
        return primaries

    def replicas(self, service: str) -> int:
        """How many replicas of `service` (search, ranker or features) the local stack runs."""
        return int(getattr(self, f"{service}_replicas"))

    def replica_counts(self) -> dict[str, int]:
        """service -> its replicas, for every replicated service (atelier.stack.replicas)."""
        return {service: self.replicas(service) for service in REPLICATED}

    @property
    def chosen_models(self) -> list[str] | None:
        return None if self.triton_models is None else [name for name in self.triton_models.split(",") if name]

    def repository_path(self, state: Path | None = None) -> Path:
        """The runtime model repository: the one chosen, else model_repository/ in `state` (default: the
        state folder)."""
        chosen = self.model_repository
        if chosen is not None:
            return chosen.expanduser().resolve()
        return (state or state_dir()) / "model_repository"
