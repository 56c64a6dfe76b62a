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

The pure helpers (``tokenize``, ``TextEncoder``) do not need Triton: unit tests and the
training code import this module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atelier.inference.clip_config import tower_config
from atelier.inference.request_batch import decode_rows, gather, respond
from atelier.inference.settings import ClipTextSettings, SettingsError, check_checkpoint_dir, config_parameters
from atelier.inference.signatures import CLIP_TEXT, EMBEDDING, TEXT

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (unit tests, training)
    pb_utils = None

MODEL_DIR_HELP = (
    "run `atelier models train-clip`, or point it at a local CLIP checkpoint directory with its "
    "tokenizer, e.g. a copy of openai/clip-vit-base-patch32 (weights are never downloaded)"
)
# Tokenizers without a configured limit report a huge sentinel as model_max_length.
UNSET_TOKENIZER_LIMIT = 1_000_000


def resolve_model_dir(settings: ClipTextSettings) -> Path:
    """The checkpoint directory to load, checked to hold a config and a tokenizer."""
    if settings.model_dir is None:
        raise SettingsError(f"ATELIER_CLIP_MODEL_DIR is not set: {MODEL_DIR_HELP}")
    return check_checkpoint_dir(settings.model_dir, f"ATELIER_CLIP_MODEL_DIR={settings.model_dir}")


def token_limit(config: Any, tokenizer: Any) -> int:
    """The longest text the checkpoint takes, in tokens: its position embeddings, or its
    tokenizer's limit when lower."""
    limits = [config.max_position_embeddings, tokenizer.model_max_length]
    return min(limit for limit in limits if isinstance(limit, int) and limit < UNSET_TOKENIZER_LIMIT)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask of ``texts``, padded to the longest, cut at ``max_length`` tokens.

    The tokenizers add their end-of-text token (CLIP's, or BERT's [SEP]) after cutting, so every
    row keeps the token CLIP's text tower pools at.
    """
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    # BERT tokenizers add token_type_ids, which CLIP's text model does not take.
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


class TextEncoder:
    """A CLIP checkpoint's text tower, projection and tokenizer; no Triton involved."""

    def __init__(self, settings: ClipTextSettings) -> None:
        self.settings = settings
        self.model_dir = resolve_model_dir(settings)  # before the slow import: fail fast
        where = f"ATELIER_CLIP_MODEL_DIR={self.model_dir}"

        from transformers import AutoTokenizer, CLIPTextModelWithProjection
        from transformers.utils import logging

        verbosity = logging.get_verbosity()
        # A full CLIPModel checkpoint also holds the vision tower, which this model does not load:
        # transformers warns about every one of its weights.
        logging.set_verbosity_error()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            self.model, loading = CLIPTextModelWithProjection.from_pretrained(
                self.model_dir,
                config=tower_config(self.model_dir, "text"),
                local_files_only=True,
                output_loading_info=True,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise SettingsError(f"{where}: cannot load the checkpoint: {exc}") from exc
        finally:
            logging.set_verbosity(verbosity)
        if loading["missing_keys"]:
            raise SettingsError(
                f"{where}: not a CLIP text encoder, the checkpoint lacks {', '.join(sorted(loading['missing_keys']))}"
            )
        self.model.eval()
        self.dimension: int = self.model.config.projection_dim
        limit = token_limit(self.model.config, self.tokenizer)
        if settings.text_max_length is not None and settings.text_max_length > limit:
            raise SettingsError(
                f"ATELIER_CLIP_TEXT_MAX_LENGTH={settings.text_max_length} exceeds this checkpoint's {limit}"
            )
        self.max_length: int = settings.text_max_length or limit

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised; one forward pass."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        with torch.inference_mode():
            vectors = self.model(**tokenize(self.tokenizer, texts, self.max_length)).text_embeds
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
        return vectors.float().numpy()


def _decode_request(request: Any) -> list[str]:
    return [text for (text,) in decode_rows(request, TEXT)]


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        settings = ClipTextSettings.from_env(parameters=config_parameters(json.loads(args["model_config"])))
        torch.set_num_threads(settings.text_num_threads)
        self.encoder = TextEncoder(settings)
        pb_utils.Logger.log_info(
            f"{CLIP_TEXT.model}: {type(self.encoder.model).__name__} from {self.encoder.model_dir}, "
            f"dim {self.encoder.dimension}, tokenizer {type(self.encoder.tokenizer).__name__}, "
            f"max_length {self.encoder.max_length}, {settings.text_num_threads} thread(s)"
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        rows, spans = gather(requests, _decode_request)
        return respond(spans, {EMBEDDING: self.encoder.encode(rows)})

    def finalize(self) -> None:
        self.encoder = None
