"""One forward pass over every request of a dynamic batch, each request answered on its own.

A request that cannot be decoded gets its own INVALID_ARG error; the others of the batch are
still computed and answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (unit tests, benchmarks)
    pb_utils = None

Row = TypeVar("Row")
# Rows [start, end) of one request in the batch, or why the request was refused.
Span = tuple[int, int] | str


def gather(requests: Sequence[Any], decode: Callable[[Any], list[Row]]) -> tuple[list[Row], list[Span]]:
    """The rows of every request, concatenated, and each request's span of them.

    ``decode`` turns one request into its rows; a ValueError it raises (UnicodeDecodeError
    included) refuses that request only, with the error's message.
    """
    rows: list[Row] = []
    spans: list[Span] = []
    for request in requests:
        try:
            decoded = decode(request)
        except ValueError as exc:
            spans.append(str(exc))
            continue
        spans.append((len(rows), len(rows) + len(decoded)))
        rows += decoded
    return rows, spans


def respond(spans: Sequence[Span], outputs: Mapping[str, np.ndarray]) -> list[Any]:
    """One Triton response per span: its slice of every output, or its INVALID_ARG error."""
    responses = []
    for span in spans:
        if isinstance(span, str):
            error = pb_utils.TritonError(span, pb_utils.TritonError.INVALID_ARG)
            responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
        else:
            tensors = [pb_utils.Tensor(name, values[span[0] : span[1]]) for name, values in outputs.items()]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
    return responses


def input_column(request: Any, name: str) -> np.ndarray:
    """The values of a request's input ``name``, one per row."""
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)


def decode_rows(request: Any, *names: str) -> list[tuple[str, ...]]:
    """The string inputs ``names`` of a request as rows of UTF-8 strings, one value of each per row.

    A ValueError names the input and row that is not UTF-8, or the inputs whose row counts differ.
    """
    columns = [input_column(request, name) for name in names]
    counts = {name: len(column) for name, column in zip(names, columns, strict=True)}
    if len(set(counts.values())) > 1:
        raise ValueError("inputs differ in row count: " + ", ".join(f"{name} has {n}" for name, n in counts.items()))
    decoded = [
        [_utf8(value, name, row) for row, value in enumerate(column)]
        for name, column in zip(names, columns, strict=True)
    ]
    return list(zip(*decoded, strict=True))


def _utf8(value: bytes | str, name: str, row: int) -> str:
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} row {row} is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
