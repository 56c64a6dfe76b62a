"""Async client of the Triton ``text_embedding`` model (triton_models/text_embedding).

Used by the services (queries) and the catalogue loader (passages). Every call carries a
deadline (``timeout_s``). Inputs larger than the model's ``max_batch_size`` are sent in chunks,
at most ``max_in_flight`` at a time so the server's dynamic batcher stays busy without a
catalogue load queueing thousands of requests (each of which would then run out of time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput, InferRequestedOutput

QUERY = "query"
PASSAGE = "passage"
# tritonclient's own message size limit (channel arguments replace its defaults), and a short
# reconnect backoff: gRPC's default grows towards 2 minutes while Triton is down, so search went
# on answering degraded ~10 s after a restarted Triton was ready (tests/integration/test_chaos.py).
MAX_MESSAGE_BYTES = 2**31 - 1
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class TextEmbedder:
    def __init__(
        self,
        url: str,
        model_name: str = "text_embedding",
        timeout_s: float = 5.0,
        chunk_size: int | None = None,
        max_in_flight: int = 2,
    ) -> None:
        """``url`` is Triton's gRPC ``host:port``; ``chunk_size`` defaults to the model's max_batch_size."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.url = url
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._chunk_size = chunk_size
        self._max_in_flight = max_in_flight
        # Created on first use, inside the event loop that will use it.
        self._client: triton_aio.InferenceServerClient | None = None
        self._dimension: int | None = None

    def _get_client(self) -> triton_aio.InferenceServerClient:
        if self._client is None:
            self._client = triton_aio.InferenceServerClient(self.url, channel_args=CHANNEL_ARGS)
        return self._client

    async def _max_batch_size(self) -> int:
        if self._chunk_size is None:
            config = await self._get_client().get_model_config(
                self.model_name, as_json=True, client_timeout=self.timeout_s
            )
            # 0 means the model does not batch: one text per request.
            self._chunk_size = max(int(config["config"].get("max_batch_size", 0)), 1)
        return self._chunk_size

    async def dimension(self) -> int:
        """Length of every embedding: from the model metadata, else from embedding one probe text."""
        if self._dimension is None:
            metadata = await self._get_client().get_model_metadata(
                self.model_name, as_json=True, client_timeout=self.timeout_s
            )
            shape = next(out["shape"] for out in metadata["outputs"] if out["name"] == "EMBEDDING")
            last = int(shape[-1])
            # The config declares dims [-1]: the size comes from the checkpoint, so ask the model.
            self._dimension = last if last > 0 else (await self._infer([""], PASSAGE)).shape[1]
        return self._dimension

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised, with the model's query prefix."""
        return await self._embed(texts, QUERY)

    async def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised, never prefixed."""
        return await self._embed(texts, PASSAGE)

    async def _embed(self, texts: Sequence[str], mode: str) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        if not texts:
            return np.empty((0, await self.dimension()), dtype=np.float32)
        size = await self._max_batch_size()
        if len(texts) <= size:
            return await self._infer(texts, mode)
        gate = asyncio.Semaphore(self._max_in_flight)

        async def chunk(start: int) -> np.ndarray:
            async with gate:
                return await self._infer(texts[start : start + size], mode)

        parts = await asyncio.gather(*(chunk(start) for start in range(0, len(texts), size)))
        return np.concatenate(parts)

    async def _infer(self, texts: Sequence[str], mode: str) -> np.ndarray:
        n = len(texts)
        text = InferInput("TEXT", [n, 1], "BYTES")
        text.set_data_from_numpy(np.array([t.encode("utf-8") for t in texts], dtype=np.object_).reshape(n, 1))
        modes = InferInput("MODE", [n, 1], "BYTES")
        modes.set_data_from_numpy(np.full((n, 1), mode.encode(), dtype=np.object_))
        result = await self._get_client().infer(
            self.model_name,
            [text, modes],
            outputs=[InferRequestedOutput("EMBEDDING")],
            client_timeout=self.timeout_s,
        )
        embeddings = result.as_numpy("EMBEDDING")
        if embeddings is None or embeddings.ndim != 2 or embeddings.shape[0] != n:
            shape = None if embeddings is None else embeddings.shape
            raise RuntimeError(f"{self.model_name} returned EMBEDDING of shape {shape} for {n} texts")
        return embeddings.astype(np.float32, copy=False)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
