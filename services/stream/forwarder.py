"""Publishes re-routed records (retry and dead-letter topics) and waits for the broker's acknowledgements.

`forward` returns only once every record of the call has been acknowledged
(acks=all); until then the consumed records stay unacknowledged in Faust, so
their offsets are not committed. A failed or timed-out send is sent again,
whole, after a pause: a record that did get through the first time is then
published twice, which the feature store's dedupe makes harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import faust

from services.stream.records import Outgoing

log = logging.getLogger(__name__)


class Forwarder(Protocol):
    async def forward(self, records: Sequence[Outgoing]) -> None: ...


class ProducerForwarder:
    """Forwards through the Faust app's producer."""

    def __init__(
        self,
        app: faust.App,
        timeout_s: float,
        backoff_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._app = app
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._sleep = sleep

    async def forward(self, records: Sequence[Outgoing]) -> None:
        if not records:
            return
        failures = 0
        while True:
            try:
                await asyncio.wait_for(self._send_all(records), timeout=self._timeout_s)
                return
            except Exception as error:  # noqa: BLE001 (any failure: nothing may be assumed delivered)
                failures += 1
                log.warning(
                    "re-routing %d records failed (try %d), sending again in %.1fs: %r",
                    len(records),
                    failures,
                    self._backoff_s,
                    error,
                )
                await self._sleep(self._backoff_s)

    async def _send_all(self, records: Sequence[Outgoing]) -> None:
        producer = self._app.producer
        pending: list[asyncio.Future] = []
        for record in records:
            delivery = await producer.send(
                record.topic,
                key=record.key,
                value=record.value,
                partition=None,
                timestamp=None,
                headers=list(record.headers.items()),
            )
            future = asyncio.ensure_future(delivery)
            # An abandoned attempt's failures are reported by the attempt that replaces it.
            future.add_done_callback(_retrieve)
            pending.append(future)
        # asyncio.wait, unlike gather, leaves the deliveries alone when the deadline cancels it.
        await asyncio.wait(pending)
        for future in pending:
            future.result()


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
