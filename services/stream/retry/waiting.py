"""One retry tier's batch: apply each record once it is due, sleeping (not polling) until then.

Why a tier may wait on its head record: every record of one tier was published
with the same delay (due = publish time + delay), and one tier's agent receives
its partitions' records in about publish order, so the record it waits for is
(nearly) the earliest due of all it holds; nothing behind it was due earlier.
The only records held up past their due time are ones of another partition
fetched after the head but published before it: by at most the publish-order
skew between partitions (one fetch, STREAM_FETCH_MAX_WAIT_S, plus a batch window),
never by the tier's delay. Records due already (a backlog after downtime) are
applied at once, in batches. Each tier is its own agent (its own task), so a
60 s wait never delays the 1 s tier; Faust stops fetching a partition whose
agent buffer is under pressure, not the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from services.stream.forwarder import Forwarder
from services.stream.handler import ClickHandler, wall_ms
from services.stream.records import Incoming, same_record


@dataclass(frozen=True)
class DueWaiter:
    """Sleeps until a due time, waking early when the worker stops."""

    # Sleeps for the given seconds or until the worker stops (Faust: app.sleep).
    sleep: Callable[[float], Awaitable[None]]
    stopping: Callable[[], bool]
    clock_ms: Callable[[], int] = wall_ms

    async def wait_until(self, due_ms: int) -> bool:
        """True once due; False when the worker began to stop first."""
        while not self.stopping():
            remaining_ms = due_ms - self.clock_ms()
            if remaining_ms <= 0:
                return True
            await self.sleep(remaining_ms / 1000)
        return False


async def process_tier_batch(
    records: Sequence[Incoming], attempt: int, handler: ClickHandler, waiter: DueWaiter, forwarder: Forwarder
) -> None:
    """Settles a batch of tier `attempt`: applied once due, or, when the worker stops first,
    published again unchanged to the tier (records not yet due are not retried early)."""
    ready: list[Incoming] = []
    for index, record in enumerate(records):
        due_ms = record.due_ms or 0
        if due_ms > waiter.clock_ms():
            if ready:
                await handler.handle(ready, attempt)
                ready = []
            if not await waiter.wait_until(due_ms):
                await forwarder.forward([same_record(rest) for rest in records[index:]])
                return
        ready.append(record)
    if ready:
        await handler.handle(ready, attempt)
