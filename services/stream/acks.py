"""Keeping a batch's offsets uncommitted unless the batch was settled.

How Faust commits what an agent consumes with `stream.take_events()` (as `take()`):
  - Each consumed message holds a reference count; the stream's own per-event ack
    is switched off while take is running.
  - take acknowledges the whole batch (one `Stream.ack` per event) when the agent
    asks for the next batch, i.e. after the agent's loop body for this batch has
    returned. A message acked by every stream it went to is "acked" in the consumer.
  - The consumer commits, every `broker_commit_interval` (2.8 s) and when it stops
    or partitions are revoked, the offset after the longest run of acked messages
    of each partition: an unacked message holds back every later offset of its
    partition.
So records are committed only after the body has settled them (applied, or
re-routed with the broker's acknowledgement), and a worker killed in the middle
of a batch (SIGKILL, OOM, power) commits nothing of it: the group's next member
receives the batch again, and the feature store's dedupe makes a second apply a no-op.

The one gap: take acks the batch in a `finally` clause, so it also acks a batch
whose body raised (when the abandoned generator is closed), and the consumer
then commits it (seen here: a worker that crashed mid-batch committed the whole
batch). `settled_or_held` closes the gap: when the body fails, it takes one more
reference on each message of the batch, so that ack leaves them unacknowledged,
and, unless the failure is a cancellation (Faust stopping the agent), crashes
the worker: it exits non-zero and its last commit stops before the held batch.
Letting Faust restart just the agent instead would keep consuming behind the
held messages, whose partitions could then never commit again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from faust.types import EventT

log = logging.getLogger(__name__)


@asynccontextmanager
async def settled_or_held(
    events: Sequence[EventT], crash: Callable[[BaseException], Awaitable[None]]
) -> AsyncIterator[None]:
    try:
        yield
    except Exception as error:
        _hold(events)
        log.critical("a batch of %d records could not be settled; stopping the worker: %r", len(events), error)
        await crash(error)
        raise
    except BaseException:  # cancellation (Faust stopping the agent), interpreter exit
        _hold(events)
        raise


def _hold(events: Sequence[EventT]) -> None:
    for event in events:
        event.message.incref()
