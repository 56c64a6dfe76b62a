"""Async client of the Triton ``reranker`` cross-encoder (triton_models/reranker).

One query against many passages goes as one request of one row per pair, so the model
scores a query's candidates in a single forward pass. Every call carries a deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput, InferRequestedOutput


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array([value.encode("utf-8") for value in values], dtype=np.object_).reshape(len(values), 1)


class Reranker:
    def __init__(self, url: str, model_name: str = "reranker", timeout_s: float = 1.0) -> None:
        """``url`` is Triton's gRPC ``host:port``."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.url = url
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._client: triton_aio.InferenceServerClient | None = None  # made in the loop that uses it

    def _get_client(self) -> triton_aio.InferenceServerClient:
        if self._client is None:
            self._client = triton_aio.InferenceServerClient(self.url)
        return self._client

    async def score(self, query: str, passages: Sequence[str], timeout_s: float | None = None) -> np.ndarray:
        """Relevance in (0, 1) of each passage to the query, float32 [len(passages)]."""
        n = len(passages)
        if n == 0:
            return np.empty(0, dtype=np.float32)
        queries = InferInput("QUERY", [n, 1], "BYTES")
        queries.set_data_from_numpy(_strings([query] * n))
        texts = InferInput("PASSAGE", [n, 1], "BYTES")
        texts.set_data_from_numpy(_strings(passages))
        result = await self._get_client().infer(
            self.model_name,
            [queries, texts],
            outputs=[InferRequestedOutput("SCORE")],
            client_timeout=timeout_s or self.timeout_s,
        )
        scores = result.as_numpy("SCORE")
        if scores is None or scores.size != n:
            shape = None if scores is None else scores.shape
            raise RuntimeError(f"{self.model_name} returned SCORE of shape {shape} for {n} passages")
        return scores.reshape(n).astype(np.float32, copy=False)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
