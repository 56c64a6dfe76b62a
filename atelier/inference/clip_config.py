"""One tower of a CLIP checkpoint, its configuration and its loading, for clip_image and clip_text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from atelier.inference.settings import SettingsError

# Each tower, and what it encodes (for the messages).
TOWERS = {"text": "text", "vision": "image"}


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


def load_clip_tower(model_dir: Path, tower: str, load_preprocessor: Callable[[Path], Any]) -> tuple[Any, Any]:
    """(the ``tower`` of the CLIP checkpoint in ``model_dir`` with its projection, in eval mode, and
    ``load_preprocessor(model_dir)``: its tokenizer or image processor).

    A SettingsError naming ATELIER_CLIP_MODEL_DIR when the checkpoint cannot be loaded, or lacks
    the tower's trained projection (a CLIPVisionModel checkpoint, say, which would embed at random).
    """
    from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection
    from transformers.utils import logging

    if tower not in TOWERS:
        raise ValueError(f"tower must be one of {', '.join(TOWERS)}, got {tower!r}")
    where = f"ATELIER_CLIP_MODEL_DIR={model_dir}"
    model_class = CLIPTextModelWithProjection if tower == "text" else CLIPVisionModelWithProjection
    verbosity = logging.get_verbosity()
    # A full CLIPModel checkpoint also holds the other tower, which is not loaded: transformers
    # warns about every one of its weights.
    logging.set_verbosity_error()
    try:
        preprocessor = load_preprocessor(model_dir)
        model, loading = model_class.from_pretrained(
            model_dir, config=tower_config(model_dir, tower), local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError, KeyError) as exc:
        raise SettingsError(f"{where}: cannot load the checkpoint: {exc}") from exc
    finally:
        logging.set_verbosity(verbosity)
    if loading["missing_keys"]:
        raise SettingsError(
            f"{where}: not a CLIP {TOWERS[tower]} encoder, "
            f"the checkpoint lacks {', '.join(sorted(loading['missing_keys']))}"
        )
    return model.eval(), preprocessor
