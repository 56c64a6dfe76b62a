"""What the four models share: the ``TritonPythonModel`` skeleton, and the L2 normalisation of embeddings.

Each model's ``TritonPythonModel`` subclasses ``TritonModel`` and says only what is its own: its
signature, settings and encoder classes, how to describe the encoder it loaded, how to decode one request
into rows and how to compute the outputs of all the rows of a dynamic batch. ``initialize`` and
``execute`` follow python_backend's examples: settings read once at load, one forward pass per
``execute()``, a request that cannot be decoded refused alone (atelier/inference/request_batch.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from atelier.inference.request_batch import gather, respond
from atelier.inference.settings import ModelSettings, config_parameters
from atelier.inference.signatures import Signature

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (unit tests, training, benchmarks)
    pb_utils = None


# Tokenizers without a configured limit report a huge sentinel as model_max_length.
UNSET_TOKENIZER_LIMIT = 1_000_000


def token_limit(config: Any, tokenizer: Any) -> int | None:
    """The longest input the checkpoint takes, in tokens: its position embeddings, or its tokenizer's
    limit when lower (XLM-RoBERTa has 514 positions for 512 tokens); None when neither says."""
    limits = [getattr(config, "max_position_embeddings", None), tokenizer.model_max_length]
    return min((limit for limit in limits if isinstance(limit, int) and limit < UNSET_TOKENIZER_LIMIT), default=None)


def l2_normalise(vectors: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(vectors, p=2, dim=-1)


class TritonModel:
    """A Triton Python-backend model of one encoder, one forward pass over each dynamic batch."""

    signature: ClassVar[Signature]
    settings_class: ClassVar[type[ModelSettings]]
    encoder_class: ClassVar[Callable[[Any], Any]]  # the encoder of the settings, with no Triton involved
    threads_setting: ClassVar[str] = "num_threads"  # the settings field of torch's intra-op threads

    encoder: Any

    def describe(self, settings: Any) -> str:
        """What the load log line says after the model's name: the checkpoint and the settings in force."""
        raise NotImplementedError

    @staticmethod
    def decode(request: Any) -> list[Any]:
        """The rows of one request; a ValueError refuses that request alone."""
        raise NotImplementedError

    def compute(self, rows: Sequence[Any]) -> dict[str, np.ndarray]:
        """Each output tensor of all the rows of a batch, one row per input row."""
        raise NotImplementedError

    def initialize(self, args: dict[str, str]) -> None:
        settings = self.settings_class.from_env(parameters=config_parameters(json.loads(args["model_config"])))
        torch.set_num_threads(getattr(settings, self.threads_setting))
        self.encoder = self.encoder_class(settings)
        pb_utils.Logger.log_info(f"{self.signature.model}: {self.describe(settings)}")

    def execute(self, requests: list[Any]) -> list[Any]:
        rows, spans = gather(requests, self.decode)
        return respond(spans, self.compute(rows))

    def finalize(self) -> None:
        self.encoder = None
