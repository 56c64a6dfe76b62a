"""The local stack's primary stream workers (ATELIER_STREAM_WORKERS): one consumer group, one process each.

Every worker is a member of the same Faust app (STREAM_APP_ID), so the group shares the click topics'
partitions among them; each needs a web port of its own (readiness, metrics, Faust's group address)
and a data folder of its own (Faust locks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atelier.serving.settings import Endpoints

# Worker n (n >= 2) listens this far above ATELIER_STREAM_WEB_PORT per step: clear of every other
# default port of the stack for up to 10 workers, and of stacks 1000 ports apart (ATELIER_PORT_OFFSET).
WEB_PORT_STEP = 100


@dataclass(frozen=True)
class StreamWorker:
    name: str
    web_port: int
    data_dir: Path

    def environment(self) -> dict[str, str]:
        """The worker's own settings, on top of the stack's (ports and folders of the first are the defaults)."""
        return {"ATELIER_STREAM_WEB_PORT": str(self.web_port), "STREAM_DATA_DIR": str(self.data_dir)}


def primary_workers(endpoints: Endpoints, data_dir: Path, count: int) -> list[StreamWorker]:
    """`stream`, `stream-2`, ... `stream-<count>`: the first on the configured web port and data folder."""
    return [
        StreamWorker(
            name="stream" if number == 1 else f"stream-{number}",
            web_port=web_port(endpoints, number),
            data_dir=data_dir if number == 1 else data_dir.with_name(f"{data_dir.name}-{number}"),
        )
        for number in range(1, count + 1)
    ]


def web_port(endpoints: Endpoints, number: int) -> int:
    """Worker `number`'s web port (from 1); Prometheus scrapes each."""
    return endpoints.stream_web_port + WEB_PORT_STEP * (number - 1)
