"""Client of the Triton ``reranker`` cross-encoder (atelier/inference/reranker.py).

One query against many passages goes as one request of one row per pair, so the model scores a
query's candidates in a single forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atelier.inference.signatures import PASSAGE, QUERY, RERANKER, SCORE
from atelier.serving.triton_client import ModelAdapter, TritonClient, strings

MODEL = RERANKER.model


class Reranker(ModelAdapter):
    def __init__(self, triton: TritonClient | str, model_name: str = MODEL, timeout_s: float = 1.0) -> None:
        super().__init__(triton, timeout_s)
        self.model_name = model_name

    async def score(self, query: str, passages: Sequence[str], timeout_s: float | None = None) -> np.ndarray:
        """Relevance in (0, 1) of each passage to the query, float32 [len(passages)]."""
        n = len(passages)
        if n == 0:
            return np.empty(0, dtype=np.float32)
        inputs = {QUERY: strings([query] * n), PASSAGE: strings(passages)}
        scores = (await self.triton.infer(self.model_name, inputs, [SCORE], timeout_s or self.timeout_s))[SCORE]
        return scores.reshape(n).astype(np.float32, copy=False)
