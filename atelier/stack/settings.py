"""Settings of the local launcher (`atelier up`): which Triton models it loads and from where."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from atelier.serving.settings import Settings


class LauncherSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="ATELIER_")

    triton_models: str | None = None
    """Comma-separated Triton models to load (default: every model of triton_models/ whose weights exist)."""
    rerank_model_dir: Path | None = None
    """The reranker's checkpoint (any sequence-classification cross-encoder, BAAI/bge-reranker-base in
    production; default: models/reranker, which `atelier models train-reranker` writes). Triton's
    reranker reads it too."""
    clip_model_dir: Path | None = None
    """The CLIP checkpoint of both towers (openai/clip-vit-base-patch32 in production; default:
    models/clip, which `atelier models train-clip` writes). Triton's CLIP towers read it too."""

    @property
    def chosen_models(self) -> list[str] | None:
        return None if self.triton_models is None else [name for name in self.triton_models.split(",") if name]
