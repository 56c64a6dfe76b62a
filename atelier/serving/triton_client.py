"""The one client of Triton's gRPC endpoint that every model adapter uses (embedding, reranking, vision).

It owns the connection (tritonclient's aio client, with the shared channel options of
atelier.serving.channels, made in the event loop that uses it), builds the input tensors, checks
that every output has one row per input row, and reports Triton's errors as RemoteError with
their gRPC status code, so that callers classify them by code (atelier.serving.dependency).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from atelier.serving.channels import CHANNEL_OPTIONS
from atelier.serving.dependency import RemoteError

_DATATYPES = {np.dtype(np.object_): "BYTES", np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


def strings(values: Sequence[str | bytes]) -> np.ndarray:
    """A [len(values), 1] BYTES tensor of UTF-8 encoded strings."""
    encoded = [value.encode("utf-8") if isinstance(value, str) else value for value in values]
    return np.array(encoded, dtype=np.object_).reshape(len(encoded), 1)


def remote_error(error: InferenceServerException) -> RemoteError:
    """Triton's error with its status code (tritonclient reports it as the text "StatusCode.NAME")."""
    name = (error.status() or "").removeprefix("StatusCode.")
    code = grpc.StatusCode.__members__.get(name, grpc.StatusCode.UNKNOWN)
    return RemoteError(code, error.message() or str(error))


class TritonClient:
    """One gRPC connection to Triton; `address` is its gRPC host:port."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._client: triton_aio.InferenceServerClient | None = None  # made in the loop that uses it

    def _connection(self) -> triton_aio.InferenceServerClient:
        if self._client is None:
            self._client = triton_aio.InferenceServerClient(self.address, channel_args=CHANNEL_OPTIONS)
        return self._client

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        timeout_s: float,
        version: int | None = None,
    ) -> dict[str, np.ndarray]:
        """`outputs` of one request of `inputs` (all with the same number of rows), each checked to have that
        many; from `version` of the model (None: the one Triton serves, the highest loaded)."""
        rows = {len(values) for values in inputs.values()}
        if len(rows) != 1:
            raise ValueError(f"{model}: inputs differ in row count: {sorted(rows)}")
        [n] = rows
        tensors = []
        for name, values in inputs.items():
            tensor = InferInput(name, list(values.shape), _DATATYPES[values.dtype])
            tensor.set_data_from_numpy(values)
            tensors.append(tensor)
        try:
            result = await self._connection().infer(
                model,
                tensors,
                model_version="" if version is None else str(version),
                outputs=[InferRequestedOutput(name) for name in outputs],
                client_timeout=timeout_s,
            )
        except InferenceServerException as error:
            raise remote_error(error) from error
        answered = {}
        for name in outputs:
            values = result.as_numpy(name)
            if values is None or values.ndim < 1 or values.shape[0] != n:
                shape = None if values is None else values.shape
                raise RuntimeError(f"{model} returned {name} of shape {shape} for {n} rows")
            answered[name] = values
        return answered

    async def model_config(self, model: str, timeout_s: float) -> dict[str, Any]:
        try:
            reply = await self._connection().get_model_config(model, as_json=True, client_timeout=timeout_s)
        except InferenceServerException as error:
            raise remote_error(error) from error
        return reply["config"]

    async def model_metadata(self, model: str, timeout_s: float) -> dict[str, Any]:
        try:
            return await self._connection().get_model_metadata(model, as_json=True, client_timeout=timeout_s)
        except InferenceServerException as error:
            raise remote_error(error) from error

    async def loaded_versions(self, model: str, timeout_s: float) -> list[int]:
        """The versions of `model` Triton has loaded."""
        metadata = await self.model_metadata(model, timeout_s)
        return sorted(int(version) for version in metadata.get("versions", []))

    async def model_ready(self, model: str, timeout_s: float) -> bool:
        try:
            return await self._connection().is_model_ready(model, client_timeout=timeout_s)
        except InferenceServerException as error:
            raise remote_error(error) from error

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


class ModelAdapter:
    """Base of the thin per-model clients: a TritonClient of their own (from an address) or a shared one."""

    def __init__(self, triton: TritonClient | str, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self._owns_triton = isinstance(triton, str)
        self.triton = TritonClient(triton) if isinstance(triton, str) else triton
        self.timeout_s = timeout_s

    async def close(self) -> None:
        """Closes the connection when this adapter made it (a shared one is closed by its owner)."""
        if self._owns_triton:
            await self.triton.close()
