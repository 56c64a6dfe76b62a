"""The clip_text model: texts in, L2-normalised CLIP text embeddings out.

The text side of clip_image: the same local CLIP checkpoint (openai/clip-vit-base-patch32 in
production, or the one `atelier models train-clip` writes), of which only the text tower and its
projection are loaded, with the checkpoint's own tokenizer (AutoTokenizer: CLIP's BPE, or the
BERT WordPiece of the trained one). A text's vector and an image's vector from clip_image are
comparable by inner product; the length is the checkpoint's projection_dim.

One forward pass per ``execute()`` over every text of every request of the dynamic batch; a
request with a row that is not UTF-8 fails alone with INVALID_ARG.

Settings (``ClipTextSettings``, atelier/inference/settings.py), read once at load: the
environment variable wins, then the config.pbtxt parameter (the variable's name without
``ATELIER_``, lower case), then the default.

  ATELIER_CLIP_MODEL_DIR          clip_model_dir          local CLIP checkpoint directory (required;
                                                          shared with clip_image)
  ATELIER_CLIP_TEXT_MAX_LENGTH    clip_text_max_length    tokens per text, truncated beyond (default:
                                                          the checkpoint's limit, 77 for OpenAI's CLIP)
  ATELIER_CLIP_TEXT_NUM_THREADS   clip_text_num_threads   torch intra-op threads per instance (default 2)
  ATELIER_CLIP_TEXT_PRECISION     clip_text_precision     fp16 | fp32 | auto (default auto: fp16 on a
                                                          GPU instance, fp32 on CPU)

A version folder's settings.json and checkpoint/ win over all of these (settings.py). The model
runs on the device of its instance group (KIND_GPU: CUDA) in its precision; the embeddings are
normalised in fp32 (atelier/inference/triton_model.py).

The pure helpers (``tokenize``, ``TextEncoder``) do not need Triton: unit tests and the
training code import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atelier.inference.clip_config import load_clip_tower
from atelier.inference.request_batch import decode_rows
from atelier.inference.settings import ClipTextSettings, SettingsError, required_checkpoint_dir
from atelier.inference.signatures import CLIP_TEXT, EMBEDDING, TEXT
from atelier.inference.triton_model import CPU, TritonModel, l2_normalise, model_dtype, place, token_limit

MODEL_DIR_HELP = (
    "run `atelier models train-clip`, or point it at a local CLIP checkpoint directory with its "
    "tokenizer, e.g. a copy of openai/clip-vit-base-patch32 (weights are never downloaded)"
)


def resolve_model_dir(settings: ClipTextSettings) -> Path:
    """The checkpoint directory to load, checked to hold a config and a tokenizer."""
    return required_checkpoint_dir(settings, MODEL_DIR_HELP)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask of ``texts``, padded to the longest, cut at ``max_length`` tokens.

    The tokenizers add their end-of-text token (CLIP's, or BERT's [SEP]) after cutting, so every
    row keeps the token CLIP's text tower pools at.
    """
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    # BERT tokenizers add token_type_ids, which CLIP's text model does not take.
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def load_tokenizer(model_dir: Path) -> Any:
    """The checkpoint's own tokenizer: CLIP's BPE, or the BERT WordPiece of a trained one."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)


class TextEncoder:
    """A CLIP checkpoint's text tower, projection and tokenizer, on ``device`` in the settings' precision;
    no Triton involved."""

    def __init__(self, settings: ClipTextSettings, device: torch.device | str = CPU) -> None:
        self.settings = settings
        self.model_dir = resolve_model_dir(settings)  # before the slow import: fail fast
        self.device = torch.device(device)
        self.dtype = model_dtype(settings.text_precision, self.device)
        model, self.tokenizer = load_clip_tower(self.model_dir, "text", load_tokenizer)
        self.model = place(model, self.device, self.dtype)
        self.dimension: int = self.model.config.projection_dim
        limit = token_limit(self.model.config, self.tokenizer) or self.model.config.max_position_embeddings
        if settings.text_max_length is not None and settings.text_max_length > limit:
            raise SettingsError(
                f"ATELIER_CLIP_TEXT_MAX_LENGTH={settings.text_max_length} exceeds this checkpoint's {limit}"
            )
        self.max_length: int = settings.text_max_length or limit

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised; one forward pass."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        batch = {name: ids.to(self.device) for name, ids in tokenize(self.tokenizer, texts, self.max_length).items()}
        with torch.inference_mode():
            vectors = l2_normalise(self.model(**batch).text_embeds.float())
        return vectors.cpu().numpy()


class TritonPythonModel(TritonModel):
    signature = CLIP_TEXT
    settings_class = ClipTextSettings
    encoder_class = TextEncoder
    threads_setting = "text_num_threads"

    def describe(self, settings: ClipTextSettings) -> str:
        return (
            f"{type(self.encoder.model).__name__}, dim {self.encoder.dimension}, "
            f"tokenizer {type(self.encoder.tokenizer).__name__}, max_length {self.encoder.max_length}, "
            f"{settings.text_num_threads} thread(s)"
        )

    @staticmethod
    def decode(request: Any) -> list[str]:
        return [text for (text,) in decode_rows(request, TEXT)]

    def compute(self, rows: Sequence[str]) -> dict[str, np.ndarray]:
        return {EMBEDDING: self.encoder.encode(rows)}
