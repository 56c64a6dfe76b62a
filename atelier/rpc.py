"""Small helpers for answering gRPC calls."""

from __future__ import annotations

from typing import NoReturn

import grpc


async def abort_unimplemented(context: grpc.aio.ServicerContext, method: str) -> NoReturn:
    """Answers UNIMPLEMENTED (HTTP 501 at the edge): never a made-up result."""
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
