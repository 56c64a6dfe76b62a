"""The one set of options for every internal gRPC channel (search -> features, ranker, Triton).

gRPC's default reconnect backoff grows towards two minutes while a peer is down, so a client
went on failing for 10-16 s after a restarted features service or Triton was ready again
(measured by SIGKILL under traffic). Here a lost connection is retried every 0.25-1 s.
"""

from __future__ import annotations

import grpc

# Triton's replies carry whole embedding batches: tritonclient's own limit, kept when its
# channel arguments are replaced by these.
MAX_MESSAGE_BYTES = 2**31 - 1
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


def insecure_channel(address: str) -> grpc.aio.Channel:
    """A channel to a peer on the internal network, with CHANNEL_OPTIONS."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
