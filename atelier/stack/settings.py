"""Settings of the local launcher (`atelier up`) and of `atelier models`: which Triton models it
loads, where their versions live, and where first versions come from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import SettingsConfigDict

from atelier.serving.settings import Settings, state_dir


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
    models_switch_grace_s: float = 6.0
    """How long `atelier models publish` and `rollback` keep the version an index switch leaves behind
    loaded: longer than search takes to notice the switch (SEARCH_INDEX_REFRESH_S)."""

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
