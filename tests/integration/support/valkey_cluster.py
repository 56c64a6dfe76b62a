"""A real Valkey cluster for tests: primaries with one replica each, from the local stack's valkey-server
binary, each node a process of the test in its own folder of `state`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from atelier.stack.components import redis_server_binary
from atelier.stack.readiness import port_in_use

HOST = "127.0.0.1"
SLOTS = 16384
BUS_OFFSET = 10000  # each node's cluster bus listens on its port + 10000
# Node ports whose bus ports stay below the ephemeral range (32768-60999), where a client connection may hold them.
PORTS = range(21700, 21900)


def free_ports(count: int) -> list[int]:
    """`count` node ports free on HOST, their bus ports too."""
    free = [p for p in PORTS if not port_in_use(HOST, p) and not port_in_use(HOST, p + BUS_OFFSET)]
    if len(free) < count:
        raise RuntimeError(f"fewer than {count} free ports for a valkey cluster in {PORTS}")
    return free[:count]


@dataclass
class ValkeyCluster:
    ports: list[int]
    primaries: int
    state: Path
    password: str | None = None
    node_timeout_ms: int = 2000
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    def start_node(self, port: int) -> None:
        folder = self.state / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        auth = ["--requirepass", self.password, "--masterauth", self.password] if self.password else []
        self.processes[port] = subprocess.Popen(
            [
                str(redis_server_binary()),
                *("--port", str(port), "--bind", HOST, "--dir", str(folder), "--logfile", str(folder / "valkey.log")),
                *("--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf")),
                *("--cluster-node-timeout", str(self.node_timeout_ms), "--save", "", "--appendonly", "no"),
                # A replica's first sync streamed at once, not after a fork's RDB file and a 5 s wait.
                *("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"),
                *auth,
            ]
        )

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host=HOST, port=port, password=self.password, decode_responses=True, socket_timeout=5)

    def form(self, timeout_s: float = 30) -> None:
        """CLUSTER MEET, slots split evenly over the first `primaries` ports, the others their replicas."""
        nodes = [self.node(port) for port in self.ports]
        deadline = time.monotonic() + timeout_s
        _until(lambda: all(node.ping() for node in nodes), deadline, "nodes answer")
        for node in nodes[1:]:
            node.execute_command("CLUSTER", "MEET", HOST, self.ports[0])
        share = SLOTS // self.primaries
        for index, node in enumerate(nodes[: self.primaries]):
            last = SLOTS - 1 if index == self.primaries - 1 else (index + 1) * share - 1
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
        _until(
            lambda: all(len(n.execute_command("CLUSTER", "NODES").splitlines()) == len(nodes) for n in nodes),
            deadline,
            "gossip",
        )
        ids = [node.execute_command("CLUSTER", "MYID") for node in nodes]
        for index, node in enumerate(nodes[self.primaries :]):
            primary = ids[index % self.primaries]
            _until(lambda node=node, primary=primary: _replicate(node, primary), deadline, "replicas attached")
        self.await_healthy(deadline)

    def await_healthy(self, deadline: float) -> None:
        """cluster_state ok on every live node, `primaries` primaries, each with a replica in sync."""

        def healthy() -> bool:
            live = [self.node(port) for port, process in self.processes.items() if process.poll() is None]
            if any(node.cluster("info")["cluster_state"] != "ok" for node in live):
                return False
            roles = [node.info("replication") for node in live]
            in_sync = [role for role in roles if role["role"] == "slave" and role["master_link_status"] == "up"]
            primaries = [role for role in roles if role["role"] == "master"]
            return len(primaries) == self.primaries and len(in_sync) >= self.primaries

        _until(healthy, deadline, "cluster healthy")

    def primary_of(self, key: str) -> int:
        """The port of the primary serving `key`'s slot now."""
        slot = key_slot(key.encode())
        for port in self.ports:
            if self.processes[port].poll() is not None:
                continue
            for line in self.node(port).execute_command("CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "master" in fields[2] and "fail" not in fields[2]:
                    for span in fields[8:]:
                        start, _, end = span.partition("-")
                        if int(start) <= slot <= int(end or start):
                            return int(fields[1].split(":")[1].split("@")[0])
            break
        raise LookupError(f"no primary serves slot {slot}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def _replicate(node: redis.Redis, primary: str) -> bool:
    try:
        node.execute_command("CLUSTER", "REPLICATE", primary)
    except redis.ResponseError:
        return False  # the primary is not known to it yet
    return True


def _until(condition: Callable[[], object], deadline: float, what: str) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis.RedisError as error:
            last = error
        time.sleep(0.05)
    raise TimeoutError(f"valkey cluster: {what} not within the time ({last})")


@contextmanager
def running(state: Path, ports: list[int], primaries: int = 3, password: str | None = None) -> Iterator[ValkeyCluster]:
    cluster = ValkeyCluster(ports, primaries, state, password)
    try:
        for port in ports:
            cluster.start_node(port)
        cluster.form()
        yield cluster
    finally:
        cluster.stop()
