"""A real Valkey cluster for tests, as the local stack forms one (atelier.stack.redis_cluster): primaries
with one replica each, from the stack's valkey-server, each node a process of the test in a folder of its own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from atelier.stack.components import redis_server_binary
from atelier.stack.readiness import port_in_use
from atelier.stack.redis_cluster import BUS_PORT_OFFSET, Cluster, Node, parse_nodes, server_options

HOST = "127.0.0.1"
# Node ports whose bus ports stay below the ephemeral range (32768-60999), where a client connection may hold them.
PORTS = range(21700, 21900)


def free_ports(count: int) -> list[int]:
    """`count` node ports free on HOST, their bus ports too."""
    free = [p for p in PORTS if not port_in_use(HOST, p) and not port_in_use(HOST, p + BUS_PORT_OFFSET)]
    if len(free) < count:
        raise RuntimeError(f"fewer than {count} free ports for a valkey cluster in {PORTS}")
    return free[:count]


@dataclass
class ValkeyCluster:
    ports: list[int]
    primaries: int
    state: Path
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def nodes(self) -> list[Node]:
        return [Node(number, port) for number, port in enumerate(self.ports, 1)]

    def start_node(self, port: int) -> None:
        """Starts (or starts again) the node on `port`: it rejoins from its nodes.conf."""
        (node,) = [node for node in self.nodes if node.port == port]
        folder = self.state / node.name
        folder.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                str(redis_server_binary()),
                *("--port", str(port), "--bind", HOST, "--dir", str(folder), "--logfile", str(folder / "valkey.log")),
                *("--save", "", "--appendonly", "no"),
                *server_options(node, HOST, folder),
            ]
        )

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host=HOST, port=port, decode_responses=True, socket_timeout=5)

    def form(self, timeout_s: float = 45) -> None:
        cluster = Cluster(HOST, self.nodes, None, self.primaries)
        try:
            cluster.form(time.monotonic() + timeout_s, say=lambda _: None)
        finally:
            cluster.close()

    def primary_of(self, key: str) -> int:
        """The port of the primary serving `key`'s slot now, as a live node sees the cluster."""
        slot = key_slot(key.encode())
        live = next(port for port, process in self.processes.items() if process.poll() is None)
        for peer in parse_nodes(self.node(live).execute_command("CLUSTER", "NODES")):
            if peer.is_primary and not peer.failing and slot in peer.slots:
                return peer.port
        raise LookupError(f"no primary serves slot {slot}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@contextmanager
def running(state: Path, ports: list[int], primaries: int = 3) -> Iterator[ValkeyCluster]:
    cluster = ValkeyCluster(ports, primaries, state)
    try:
        for port in ports:
            cluster.start_node(port)
        cluster.form()
        yield cluster
    finally:
        cluster.stop()
