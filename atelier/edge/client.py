"""The API key our own clients of the edge send (tests, benchmarks, `atelier eval`): ATELIER_API_KEY,
else the local dev key `atelier up` wrote to the state folder. Read on each call: the test stack
writes its dev key when it starts."""

from __future__ import annotations

from collections import namedtuple

import grpc

from atelier.edge.dev_key import dev_key_path
from atelier.edge.settings import API_KEY_HEADER, ClientKeySettings
from atelier.serving.settings import state_dir


class NoApiKey(RuntimeError):
    """No key to send: neither ATELIER_API_KEY nor a dev key file."""


def api_key() -> str:
    given = ClientKeySettings.from_env().api_key
    if given:
        return given
    path = dev_key_path(state_dir())
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise NoApiKey(
            f"no API key: set ATELIER_API_KEY, or start the local stack (`atelier up` writes {path})"
        ) from None


def key_headers() -> dict[str, str]:
    """HTTP headers carrying the key."""
    return {API_KEY_HEADER: api_key()}


def key_metadata() -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying the key."""
    return ((API_KEY_HEADER, api_key()),)


class _CallDetails(
    namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class _KeyInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _with_key(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_key(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_key(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with_key(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_key(details), requests)


def edge_channel(address: str, options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """A (blocking) gRPC channel to the edge that sends the key with every call."""
    return grpc.intercept_channel(grpc.insecure_channel(address, options=options), _KeyInterceptor(key_metadata()))
