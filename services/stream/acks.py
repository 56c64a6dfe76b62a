"""Acknowledging a batch only once it is settled, so that its offsets are committed only then.

How Faust commits what an agent consumes:
  - Each consumed message holds a reference count, one per stream it went to; a
    message acked by every such stream is "acked" in the consumer.
  - The consumer commits, every `broker_commit_interval` (2.8 s) and when it stops
    or partitions are revoked, the offset after the longest run of acked messages
    of each partition: an unacked message holds back every later offset of its
    partition.
The agents take their batches with `Stream.noack_take`, which (unlike `take` and
`take_events`) yields the events and acknowledges none of them, and acknowledge
each event with `Stream.ack` once the body has settled the batch (applied, or
re-routed with the broker's acknowledgement). `take_events` would ack the batch in
a `finally` clause, a batch whose body raised included (seen here: a worker that
crashed mid-batch committed the whole batch).

So a batch whose body fails stays unacknowledged, and a worker killed in the
middle of a batch (SIGKILL, OOM, power) commits nothing of it: the group's next
member receives the batch again, and the feature store's dedupe makes a second
apply a no-op. When the body fails with an error (not a cancellation, i.e. Faust
stopping the agent), the worker is crashed: it exits non-zero and its last commit
stops before the unacknowledged batch. Letting Faust restart just the agent
instead would keep consuming behind those messages, whose partitions could then
never commit again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from faust.types import EventT, StreamT

log = logging.getLogger(__name__)


@asynccontextmanager
async def acked_once_settled(
    stream: StreamT, events: Sequence[EventT], crash: Callable[[BaseException], Awaitable[None]]
) -> AsyncIterator[None]:
    """Acknowledges `events` (from `stream.noack_take`) when the body returns; crashes the worker when it raises."""
    try:
        yield
    except Exception as error:
        log.critical("a batch of %d records could not be settled; stopping the worker: %r", len(events), error)
        await crash(error)
        raise
    # A cancellation (Faust stopping the agent) or interpreter exit propagates: nothing is acknowledged.
    for event in events:
        await stream.ack(event)
