"""The configuration of one tower of a CLIP checkpoint, for clip_image and clip_text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOWERS = ("text", "vision")


def tower_config(model_dir: Path, tower: str) -> Any:
    """The CLIPTextConfig or CLIPVisionConfig of ``model_dir``'s ``tower``, with the checkpoint's projection_dim.

    A full CLIPModel checkpoint keeps projection_dim beside its two tower configs, not in them:
    loading one tower with its config alone would build a projection of the default width (512)
    and fail on, or misread, any other. A checkpoint of one tower (CLIPVisionModelWithProjection
    saved on its own) has it in its own config.
    """
    from transformers import AutoConfig

    if tower not in TOWERS:
        raise ValueError(f"tower must be one of {', '.join(TOWERS)}, got {tower!r}")
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    if config.model_type == f"clip_{tower}_model":
        return config
    if config.model_type != "clip":
        raise ValueError(f"not a CLIP checkpoint: its config.json says model_type {config.model_type!r}")
    sub = getattr(config, f"{tower}_config")
    sub.projection_dim = config.projection_dim
    return sub
