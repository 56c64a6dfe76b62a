"""Client of the Triton ``text_embedding`` model (atelier/inference/text_embedding.py).

Used by search (queries) and the catalogue load (passages). Inputs larger than the model's
``max_batch_size`` are sent in chunks, at most ``max_in_flight`` at a time, so the server's
dynamic batcher stays busy without a catalogue load queueing thousands of requests (each of
which would then run out of time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from atelier.inference.signatures import EMBEDDING, MODE, TEXT, TEXT_EMBEDDING
from atelier.serving.gathering import all_or_none
from atelier.serving.triton_client import ModelAdapter, TritonClient, strings

MODEL = TEXT_EMBEDDING.model
QUERY = "query"
PASSAGE = "passage"


class TextEmbedder(ModelAdapter):
    def __init__(
        self,
        triton: TritonClient | str,
        model_name: str = MODEL,
        timeout_s: float = 5.0,
        chunk_size: int | None = None,
        max_in_flight: int = 2,
        version: int | None = None,
    ) -> None:
        """``triton``: a shared TritonClient or Triton's gRPC host:port; ``chunk_size`` defaults to the
        model's max_batch_size; ``version``: the model version every call uses (None: Triton's choice)
        unless a call names its own."""
        super().__init__(triton, timeout_s)
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.model_name = model_name
        self._chunk_size = chunk_size
        self._max_in_flight = max_in_flight
        self._dimension: int | None = None
        self.version = version

    async def _max_batch_size(self) -> int:
        if self._chunk_size is None:
            config = await self.triton.model_config(self.model_name, self.timeout_s)
            # 0 means the model does not batch: one text per request.
            self._chunk_size = max(int(config.get("max_batch_size", 0)), 1)
        return self._chunk_size

    async def dimension(self) -> int:
        """Length of every embedding: from the model metadata, else from embedding one probe text."""
        if self._dimension is None:
            metadata = await self.triton.model_metadata(self.model_name, self.timeout_s)
            shape = next(out["shape"] for out in metadata["outputs"] if out["name"] == EMBEDDING)
            last = int(shape[-1])
            # The config declares dims [-1]: the size comes from the checkpoint, so ask the model.
            if last <= 0:
                last = (await self._infer([""], PASSAGE, self.timeout_s, self.version)).shape[1]
            self._dimension = last
        return self._dimension

    async def embed_queries(
        self, texts: Sequence[str], timeout_s: float | None = None, version: int | None = None
    ) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised, with the model's query prefix; from `version`
        (None: this embedder's)."""
        return await self._embed(texts, QUERY, timeout_s or self.timeout_s, version or self.version)

    async def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised, never prefixed."""
        return await self._embed(texts, PASSAGE, self.timeout_s, self.version)

    async def _embed(self, texts: Sequence[str], mode: str, timeout_s: float, version: int | None) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        if not texts:
            return np.empty((0, await self.dimension()), dtype=np.float32)
        size = await self._max_batch_size()
        if len(texts) <= size:
            return await self._infer(texts, mode, timeout_s, version)
        gate = asyncio.Semaphore(self._max_in_flight)

        async def chunk(start: int) -> np.ndarray:
            async with gate:
                return await self._infer(texts[start : start + size], mode, timeout_s, version)

        parts = await all_or_none(chunk(start) for start in range(0, len(texts), size))
        return np.concatenate(parts)

    async def _infer(self, texts: Sequence[str], mode: str, timeout_s: float, version: int | None) -> np.ndarray:
        inputs = {TEXT: strings(texts), MODE: strings([mode] * len(texts))}
        embeddings = (await self.triton.infer(self.model_name, inputs, [EMBEDDING], timeout_s, version))[EMBEDDING]
        if embeddings.ndim != 2:
            raise RuntimeError(f"{self.model_name} returned EMBEDDING of shape {embeddings.shape}")
        return embeddings.astype(np.float32, copy=False)
