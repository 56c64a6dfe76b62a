"""The local stack's Valkey cluster (ATELIER_REDIS_CLUSTER_PRIMARIES=N): 2N nodes, N primaries each with a replica.

Node k (from 1) is the supervisord program `redis` (k = 1: on ATELIER_REDIS_PORT, every client's seed
address) or `redis-<k>`, on ATELIER_REDIS_PORT + NODE_PORT_STEP * (k - 1), its cluster bus 10000
above (Valkey's default). With the default ports: 6379-6384 for 3 primaries, up to 6394 for 8, buses
16379-16394; clear of every other port of the stack (the stream workers' 6066, 6166, ... 6966 among
them) and of stacks 1000 ports apart (ATELIER_PORT_OFFSET; not of one 10000 apart, whose nodes would
sit on these buses). Nodes 1..N are formed as the primaries, the slots split evenly, node N + i
as node i's replica; after a failover the roles stay swapped, which changes nothing for clients.

The one-shot `redis-cluster` (`python -m atelier.stack.redis_cluster`) forms the cluster with
Valkey's own commands (CLUSTER MEET, ADDSLOTSRANGE, REPLICATE: the server has no valkey-cli) and
exits once it is whole: every node sees cluster_state:ok and all 16384 slots, N primaries each with
a connected replica. It is idempotent: each node keeps what it knows in its nodes.conf, so a
cluster restarted node by node forms again by itself and the job only waits for it; a node whose
data was removed is met and given its slots or its primary again.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from atelier.serving.settings import Endpoints
from atelier.stack.settings import MAX_PRIMARIES

NODE_PORT_STEP = 1
BUS_PORT_OFFSET = 10000  # Valkey's cluster bus: the node's port + 10000
# A node not answering for this long is failing: its replica takes over within a few seconds.
NODE_TIMEOUT_MS = 2000
FORM_TIMEOUT_S = 45.0
POLL_S = 0.25


@dataclass(frozen=True)
class Node:
    number: int  # from 1
    port: int

    @property
    def name(self) -> str:
        """The supervisord program (and its log file): redis, redis-2, ..."""
        return program(self.number)

    @property
    def bus_port(self) -> int:
        return self.port + BUS_PORT_OFFSET


def program(number: int) -> str:
    return "redis" if number == 1 else f"redis-{number}"


def cluster_nodes(seed_port: int, primaries: int) -> list[Node]:
    """The 2 * `primaries` nodes, the first on `seed_port` (ATELIER_REDIS_PORT)."""
    return [Node(k, seed_port + NODE_PORT_STEP * (k - 1)) for k in range(1, 2 * primaries + 1)]


def server_options(node: Node, host: str, data_dir: Path) -> list[str]:
    """valkey-server's options that make `node` a cluster node (its own nodes.conf in its data folder)."""
    return [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(data_dir / "nodes.conf"),
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
        "--cluster-announce-ip",
        host,
        # A replica takes over however long ago it last heard its primary (a local stack's pauses).
        "--cluster-replica-validity-factor",
        "0",
        # A replica's first sync streamed at once, not after a forked RDB file and a 5 s wait.
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """The slots of primary i (from 0), as an inclusive range: 16384 split evenly."""
    bounds = [REDIS_CLUSTER_HASH_SLOTS * i // primaries for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


# -- what a node knows --------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str  # "-" for a primary
    link_up: bool
    slots: frozenset[int]

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool({"fail", "fail?", "handshake", "noaddr"} & self.flags)


def parse_nodes(text: str) -> list[Peer]:
    peers = []
    for line in text.splitlines():
        if not line.strip():
            continue
        node_id, address, flags, primary_id, _ping, _pong, _epoch, link, *slots = line.split()
        port = address.split("@")[0].rsplit(":", 1)[1]
        owned: set[int] = set()
        for entry in slots:
            if entry.startswith("["):  # a slot being migrated or imported
                continue
            first, _, last = entry.partition("-")
            owned.update(range(int(first), int(last or first) + 1))
        peers.append(
            Peer(
                node_id, int(port or 0), frozenset(flags.split(",")), primary_id, link == "connected", frozenset(owned)
            )
        )
    return peers


def node_client(host: str, node: Node, password: str | None, timeout_s: float) -> redis.Redis:
    """A client of one node alone (no cluster routing), each call within `timeout_s`."""
    return redis.Redis(
        host=host,
        port=node.port,
        password=password,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )


def _nodes(client: redis.Redis) -> list[Peer]:
    return parse_nodes(client.execute_command("CLUSTER", "NODES"))


def _info(client: redis.Redis) -> dict[str, str]:
    text = client.execute_command("CLUSTER", "INFO")
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _runs(slots: Iterable[int]) -> list[tuple[int, int]]:
    """Slots as sorted inclusive ranges."""
    runs: list[tuple[int, int]] = []
    for slot in sorted(slots):
        if runs and slot == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], slot)
        else:
            runs.append((slot, slot))
    return runs


# -- forming it -------------------------------------------------------------


class Cluster:
    """Clients of every node of the local cluster."""

    def __init__(self, host: str, nodes: list[Node], password: str | None, primaries: int) -> None:
        self.host = host
        self.nodes = nodes
        self.primaries = primaries
        self.clients = {node.port: node_client(host, node, password, timeout_s=2) for node in nodes}
        self.seed = self.clients[nodes[0].port]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def check_ready(self) -> None:
        """Raises unless every node sees the cluster whole: state ok, every slot, every node known,
        `primaries` primaries with slots, each with a replica whose link to it is up."""
        for node in self.nodes:
            info = _info(self.clients[node.port])
            if info.get("cluster_state") != "ok":
                raise RuntimeError(f"{node.name} sees cluster_state:{info.get('cluster_state')}")
            if int(info.get("cluster_slots_ok", 0)) != REDIS_CLUSTER_HASH_SLOTS:
                raise RuntimeError(
                    f"{node.name} sees {info.get('cluster_slots_ok')} of {REDIS_CLUSTER_HASH_SLOTS} slots ok"
                )
            if int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                raise RuntimeError(f"{node.name} knows {info.get('cluster_known_nodes')} of {len(self.nodes)} nodes")
        peers = _nodes(self.seed)
        primaries = [peer for peer in peers if peer.is_primary and peer.slots]
        if len(primaries) != self.primaries:
            raise RuntimeError(f"{len(primaries)} primaries with slots, not {self.primaries}")
        for primary in primaries:
            replicas = [peer for peer in peers if peer.primary_id == primary.node_id and not peer.failing]
            if not any(self._replication_up(peer.port) for peer in replicas if peer.port in self.clients):
                raise RuntimeError(f"{program_at(self.nodes, primary.port)} has no replica in sync")

    def _replication_up(self, port: int) -> bool:
        return self.clients[port].info("replication").get("master_link_status") == "up"

    def form(self, deadline: float, say: Callable[[str], None] = print) -> None:
        """Forms the cluster (or lets it form again) and waits until it is whole; raises at `deadline`."""
        self._wait("every node answers", deadline, lambda: [client.ping() for client in self.clients.values()])
        try:
            self.check_ready()
            say("the cluster is whole")
            return
        except (RuntimeError, redis.RedisError):
            pass
        for node in self.nodes[1:]:
            self.seed.execute_command("CLUSTER", "MEET", self.host, node.port, node.bus_port)
        self._wait("every node knows every other", deadline, self._all_met)
        self._assign_slots()
        self._wait("every node sees every slot assigned", deadline, self._all_assigned)
        self._pair_replicas()
        self._wait("the cluster is whole", deadline, self.check_ready)
        say("the cluster is whole")

    def _all_met(self) -> None:
        for node in self.nodes:
            peers = _nodes(self.clients[node.port])
            known = {peer.port for peer in peers if not {"handshake", "noaddr"} & peer.flags}
            if known != {each.port for each in self.nodes}:
                raise RuntimeError(f"{node.name} knows {sorted(known)}")

    def _all_assigned(self) -> None:
        for node in self.nodes:
            assigned = int(_info(self.clients[node.port]).get("cluster_slots_assigned", 0))
            if assigned != REDIS_CLUSTER_HASH_SLOTS:
                raise RuntimeError(f"{node.name} sees {assigned} slots assigned")

    def _assign_slots(self) -> None:
        """Gives primary i (node i) the slots of its share that no node holds, when it is a primary."""
        peers = {peer.port: peer for peer in _nodes(self.seed)}
        assigned = {slot for peer in peers.values() for slot in peer.slots}
        for node, (first, last) in zip(self.nodes, slot_ranges(self.primaries), strict=False):
            missing = set(range(first, last + 1)) - assigned
            peer = peers.get(node.port)
            if not missing or peer is None or not peer.is_primary:
                continue
            ranges = [bound for run in _runs(missing) for bound in run]
            self.clients[node.port].execute_command("CLUSTER", "ADDSLOTSRANGE", *ranges)

    def _pair_replicas(self) -> None:
        """Makes a spare node (a primary without slots or replicas) the replica of each primary without one:
        node N + i for primary i when it is spare."""
        peers = _nodes(self.seed)
        followed = {peer.primary_id for peer in peers if not peer.is_primary}
        spares = {
            peer.port: peer
            for peer in peers
            if peer.is_primary and not peer.slots and peer.node_id not in followed and peer.port in self.clients
        }
        partners = {self.nodes[i].port: self.nodes[i + self.primaries].port for i in range(self.primaries)}
        for primary in peers:
            if not primary.is_primary or not primary.slots or primary.node_id in followed or not spares:
                continue
            partner = partners.get(primary.port)
            spare = spares.pop(partner if partner in spares else next(iter(spares)))
            self.clients[spare.port].execute_command("CLUSTER", "REPLICATE", primary.node_id)

    @staticmethod
    def _wait(what: str, deadline: float, attempt: Callable[[], object]) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                attempt()
                return
            except (RuntimeError, redis.RedisError) as error:
                last = error
                time.sleep(POLL_S)
        raise TimeoutError(f"waiting until {what}: {last}")


def program_at(nodes: list[Node], port: int) -> str:
    """The supervisord program of the node on `port`."""
    return next((node.name for node in nodes if node.port == port), f"port {port}")


def local_cluster(endpoints: Endpoints, primaries: int, password: str | None = None) -> Cluster:
    """The local stack's cluster, `password` by default Redis' (Endpoints.redis_auth)."""
    nodes = cluster_nodes(endpoints.redis_port, primaries)
    return Cluster(endpoints.host, nodes, password if password is not None else endpoints.redis_auth(), primaries)


@dataclass(frozen=True)
class Owner:
    """The programs holding a key: its slot's primary and that primary's replicas."""

    slot: int
    primary: str
    replicas: tuple[str, ...]


def key_owner(endpoints: Endpoints, key: str, password: str | None = None) -> Owner:
    """Which supervisord program is the primary of `key`'s slot now, and which are its replicas (for
    failover tests: stop the primary, see a replica take over). The nodes are found from the first node
    that answers: the seed node may be the primary stopped."""
    password = password if password is not None else endpoints.redis_auth()
    nodes = cluster_nodes(endpoints.redis_port, MAX_PRIMARIES)
    peers = _nodes_from_any(endpoints.host, nodes, password)
    slot = key_slot(key.encode())
    primary = next((peer for peer in peers if peer.is_primary and slot in peer.slots and not peer.failing), None)
    if primary is None:
        raise RuntimeError(f"no primary serves slot {slot} now")
    replicas = tuple(program_at(nodes, peer.port) for peer in peers if peer.primary_id == primary.node_id)
    return Owner(slot, program_at(nodes, primary.port), replicas)


def _nodes_from_any(host: str, nodes: list[Node], password: str | None) -> list[Peer]:
    """CLUSTER NODES from the first of `nodes` that answers within a second."""
    errors: list[str] = []
    for node in nodes:
        client = node_client(host, node, password, timeout_s=1)
        try:
            return _nodes(client)
        except redis.RedisError as error:
            errors.append(f"{node.name}: {error}")
        finally:
            client.close()
    raise RuntimeError("no cluster node answers: " + "; ".join(errors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Form the local stack's Valkey cluster (idempotent).")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True, help="the first node's port (ATELIER_REDIS_PORT)")
    parser.add_argument("--primaries", type=int, required=True)
    parser.add_argument("--timeout-s", type=float, default=FORM_TIMEOUT_S)
    args = parser.parse_args(argv)
    password = Endpoints.from_env().redis_auth()
    cluster = Cluster(args.host, cluster_nodes(args.port, args.primaries), password, args.primaries)
    deadline = time.monotonic() + args.timeout_s
    # Every failure is retried until the deadline: supervisord starts a one-shot job that failed again at once.
    try:
        while True:
            try:
                cluster.form(deadline, say=lambda line: print(line, flush=True))
                return 0
            except (TimeoutError, RuntimeError, redis.RedisError) as error:
                print(f"not formed yet: {error}", flush=True)
                if time.monotonic() >= deadline:
                    return 1
                time.sleep(1.0)
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
