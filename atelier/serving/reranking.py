"""Client of the Triton ``reranker`` cross-encoder (atelier/inference/reranker.py).

One query against many passages goes as one request of one row per pair, so the model scores a
query's candidates in a single forward pass; or, where Triton runs several instances of the model,
as that many requests sent at once, one slice of the passages each, so that the instances score
them side by side (and as more, where a slice would have more rows than a request may).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from atelier.inference.signatures import PASSAGE, QUERY, RERANKER, SCORE
from atelier.serving.gathering import all_or_none
from atelier.serving.model_readiness import Serving
from atelier.serving.triton_client import ModelAdapter, TritonClient, strings

MODEL = RERANKER.model
ONE_INSTANCE = Serving()


def slices(n: int, serving: Serving) -> list[tuple[int, int]]:
    """[start, end) of contiguous slices of n rows as even as can be: one per instance (fewer when n is
    smaller), or more where one would have more rows than a request may."""
    count = max(serving.instances, math.ceil(n / serving.max_rows) if serving.max_rows else 1)
    count = max(1, min(count, n))
    bounds = [n * i // count for i in range(count + 1)]
    return list(pairwise(bounds))


class Reranker(ModelAdapter):
    def __init__(self, triton: TritonClient | str, model_name: str = MODEL, timeout_s: float = 1.0) -> None:
        super().__init__(triton, timeout_s)
        self.model_name = model_name

    async def score(
        self, query: str, passages: Sequence[str], timeout_s: float | None = None, serving: Serving = ONE_INSTANCE
    ) -> np.ndarray:
        """Relevance in (0, 1) of each passage to the query, float32 [len(passages)], asked in as many
        requests at once as `serving` (how Triton runs the model) calls for. One failing fails the lot,
        and the others are cancelled."""
        if not passages:
            return np.empty(0, dtype=np.float32)
        timeout_s = timeout_s or self.timeout_s
        requests = (self._score(query, passages[start:end], timeout_s) for start, end in slices(len(passages), serving))
        scores = await all_or_none(requests)
        return np.concatenate(scores).astype(np.float32, copy=False)

    async def _score(self, query: str, passages: Sequence[str], timeout_s: float) -> np.ndarray:
        n = len(passages)
        inputs = {QUERY: strings([query] * n), PASSAGE: strings(passages)}
        return (await self.triton.infer(self.model_name, inputs, [SCORE], timeout_s))[SCORE].reshape(n)
