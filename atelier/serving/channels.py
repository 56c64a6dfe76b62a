"""The one set of options for every internal gRPC channel (search -> features, ranker, Triton).

Load balancing: a target without a scheme ("ranker:50052") goes through gRPC's DNS resolver, which
returns every address of the name: in k8s, every ready pod of a headless Service (k8s/base). The
service config below makes the channel round_robin over all of them (gRPC's default, pick_first,
sends everything to the first). The resolver looks again when a connection closes (at the latest
after the servers' ATELIER_MAX_CONNECTION_AGE_S, atelier.serving.grpc_server), so new replicas get
traffic and gone ones are dropped; a target may also list addresses itself
("ipv4:10.0.0.1:50052,10.0.0.2:50052").

gRPC's default reconnect backoff grows towards two minutes while a peer is down, so a client
went on failing for 10-16 s after a restarted features service or Triton was ready again
(measured by SIGKILL under traffic). Here a lost connection is retried every 0.25-1 s.
"""

from __future__ import annotations

import json

import grpc

# Triton's replies carry whole embedding batches: tritonclient's own limit, kept when its
# channel arguments are replaced by these.
MAX_MESSAGE_BYTES = 2**31 - 1
# Every call to the next ready address of the target, in turn. A call that fails UNAVAILABLE (its
# replica died under it, say) is tried once more, on the next one: reads only go through these
# channels. Retries stop while more than a tenth of calls fail (gRPC's retry throttling), so an
# outage of every replica is not made worse.
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 2,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }
)
CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.service_config", SERVICE_CONFIG),
    # A pod that restarted has a new address: look it up again within a second, not gRPC's 30 s.
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


def insecure_channel(address: str) -> grpc.aio.Channel:
    """A channel to a peer on the internal network (all its replicas, round robin), with CHANNEL_OPTIONS."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
