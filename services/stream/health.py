"""A stream worker's readiness and metrics, on its Faust web server.

- `/ready/`: 200 once the worker has joined its consumer group (it has partitions
  assigned), 503 before; the launcher's readiness check (atelier.stack.readiness).
- `/metrics`: Prometheus text, Faust's own metrics (faust.sensors.prometheus, prefix
  `faust_`), the consumer lag by topic (services.stream.lag) and what the batches did
  (services.stream.metrics).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry

from services.stream.lag import LagCollector, Partition


def assigned(app: faust.App) -> set[Partition]:
    """The partitions the worker's consumer holds; none before it has started and joined."""
    try:
        return {Partition(tp.topic, tp.partition) for tp in app.consumer.assignment()}
    except Exception:  # noqa: BLE001 (Faust raises until its consumer thread has started)
        return set()


def install_health(app: faust.App) -> CollectorRegistry:
    """Installs the pages; returns the registry /metrics serves, for the worker's own metrics."""
    # A registry of the app's own: both workers' apps may live in one process (tests).
    registry = CollectorRegistry()
    setup_prometheus_sensors(app, registry=registry, name_prefix="faust")
    monitor = app.monitor

    def figures() -> tuple[Iterable[Partition], Mapping[Partition, int], Mapping[Partition, int]]:
        # The agents' topics only (Faust's assignor topic is assigned too, but carries no clicks).
        subscribed = {name for agent in app.agents.values() for name in agent.channel.topics}
        return (
            {tp for tp in assigned(app) if tp.topic in subscribed},
            {Partition(tp.topic, tp.partition): offset for tp, offset in monitor.tp_end_offsets.items()},
            {Partition(tp.topic, tp.partition): offset for tp, offset in monitor.tp_committed_offsets.items()},
        )

    registry.register(LagCollector(figures))

    @app.page("/ready/")
    async def ready(view: View, request: Request) -> Response:
        partitions = assigned(app)
        body = {"ready": bool(partitions), "partitions": len(partitions)}
        return view.json(body, status=200 if partitions else 503)

    return registry
