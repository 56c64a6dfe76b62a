"""The local stack on a Valkey cluster (ATELIER_REDIS_CLUSTER_PRIMARIES=N): 2N nodes on ports of their own,
each a cluster node with its own nodes.conf and the replication password, formed by a one-shot job before
anything that uses Redis starts, every client told it is a cluster. (The cluster itself, formed and failed
over: tests/integration/test_redis_cluster_stack.py.)"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from atelier.serving.settings import Endpoints, SettingsError
from atelier.stack import StackError, components, redis_cluster
from atelier.stack.components import Component
from atelier.stack.replicas import MAX_REPLICAS, REPLICATED
from atelier.stack.settings import LauncherSettings

Build = Callable[..., list[Component]]


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Build:
    """The launcher's components with the given ATELIER_* variables (none of its binaries needed)."""
    monkeypatch.setattr(components, "redis_server_binary", lambda: Path("valkey-server"))
    monkeypatch.setattr(components, "tansu_binary", lambda: Path("tansu"))
    monkeypatch.setattr(components, "envoy_command", lambda config: ["envoy", "--config-path", str(config)])

    # The launcher's defaults, whatever the session around the test sets (the test stack's sets many).
    for name in [name for name in os.environ if name.startswith(("ATELIER_", "STREAM_", "SEARCH_", "FEATURES_"))]:
        monkeypatch.delenv(name)

    def built(environment: dict[str, str], endpoints: dict[str, str] | None = None) -> list[Component]:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return components.build_components(Endpoints.from_env(endpoints or environment), tmp_path)

    return built


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_three_primaries_are_six_nodes_on_ports_of_their_own(build: Build, tmp_path: Path) -> None:
    built = {c.name: c for c in build({"ATELIER_REDIS_CLUSTER_PRIMARIES": "3"})}
    names = ["redis", *(f"redis-{k}" for k in range(2, 7))]
    assert set(names) <= set(built) and "redis-7" not in built
    assert [built[name].ports for name in names] == [(6379 + k, 16379 + k) for k in range(6)]
    configs, data_dirs = set(), set()
    for name in names:
        command = built[name].command
        assert _option(command, "--cluster-enabled") == "yes"
        assert _option(command, "--appendonly") == "yes"
        assert _option(command, "--cluster-announce-ip") == "127.0.0.1"
        assert int(_option(command, "--port")) == built[name].ports[0]
        configs.add(_option(command, "--cluster-config-file"))
        data_dirs.add(_option(command, "--dir"))
        assert Path(_option(command, "--dir")).is_dir()
        # The password is in the (private) config file, for clients and replication both, never on the command line.
        password = (tmp_path / "redis-password").read_text().strip()
        assert password not in " ".join(command)
        assert Path(command[1]).read_text() == f'requirepass "{password}"\nmasterauth "{password}"\n'
    assert len(configs) == len(data_dirs) == 6


def test_the_cluster_is_formed_after_its_nodes_and_before_what_uses_redis(build: Build) -> None:
    built = build({"ATELIER_REDIS_CLUSTER_PRIMARIES": "3"})
    by_name = {c.name: c for c in built}
    job = by_name["redis-cluster"]
    assert job.one_shot
    assert job.command[2:] == [
        "atelier.stack.redis_cluster",
        "--host",
        "127.0.0.1",
        "--port",
        "6379",
        "--primaries",
        "3",
    ]
    nodes = [c for c in built if c.command[0] == "valkey-server"]
    assert len(nodes) == 6
    assert {c.tier for c in nodes} == {0}
    for name in ("search", "features", "ranker", "stream", "stream-retry", "redis-exporter", "first-run", "envoy"):
        assert by_name[name].tier > job.tier > 0, name
    # Every click batch waits for a replica to hold it, so that a failover loses none.
    assert by_name["stream"].environment["STREAM_REPLICA_ACKS"] == "1"
    assert by_name["stream-retry"].environment["STREAM_REPLICA_ACKS"] == "1"


def test_without_primaries_the_stack_keeps_its_single_redis(build: Build) -> None:
    built = {c.name: c for c in build({})}
    assert "redis-cluster" not in built and "redis-2" not in built
    assert "--cluster-enabled" not in built["redis"].command
    assert built["redis"].ports == (6379,)
    assert "STREAM_REPLICA_ACKS" not in built["stream"].environment
    assert built["first-run"].tier == 2


def test_every_client_sees_a_cluster_when_the_stack_runs_one() -> None:
    assert Endpoints.from_env({"ATELIER_REDIS_CLUSTER_PRIMARIES": "3"}).redis_cluster
    assert not Endpoints.from_env({}).redis_cluster
    assert not Endpoints.from_env({"ATELIER_REDIS_CLUSTER_PRIMARIES": "0"}).redis_cluster


def test_contradicting_switches_are_refused(build: Build) -> None:
    with pytest.raises(StackError, match="ATELIER_REDIS_CLUSTER=0"):
        build({"ATELIER_REDIS_CLUSTER_PRIMARIES": "3", "ATELIER_REDIS_CLUSTER": "0"})


def test_a_cluster_client_needs_the_stacks_cluster(build: Build) -> None:
    with pytest.raises(StackError, match="ATELIER_REDIS_CLUSTER_PRIMARIES"):
        build({"ATELIER_REDIS_CLUSTER": "1"})


@pytest.mark.parametrize("value", ["1", "2", "9", "-1"])
def test_a_cluster_size_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=r"ATELIER_REDIS_CLUSTER_PRIMARIES.*or 3 to 8"):
        LauncherSettings.from_env({"ATELIER_REDIS_CLUSTER_PRIMARIES": value})


@pytest.mark.parametrize("value", ["0", "3", "8"])
def test_a_cluster_size_in_range_is_taken(value: str) -> None:
    assert LauncherSettings.from_env({"ATELIER_REDIS_CLUSTER_PRIMARIES": value}).redis_cluster_primaries == int(value)


def test_the_largest_cluster_is_clear_of_every_port_of_this_stack_and_of_stacks_1000_apart(build: Build) -> None:
    most = {f"ATELIER_{service.upper()}_REPLICAS": str(MAX_REPLICAS) for service in REPLICATED}
    built = build({**most, "ATELIER_STREAM_WORKERS": "10", "ATELIER_REDIS_CLUSTER_PRIMARIES": "8"})
    every = [port for c in built for port in c.ports]
    assert len(every) == len(set(every))
    cluster = {port for c in built if c.command[0] == "valkey-server" for port in c.ports}
    assert len(cluster) == 32
    for offset in range(1000, 10000, 1000):
        assert not {port + offset for port in cluster} & set(every)
        assert not cluster & {port + offset for port in every}


def test_the_primaries_share_every_slot() -> None:
    ranges = redis_cluster.slot_ranges(3)
    assert ranges == [(0, 5460), (5461, 10921), (10922, 16383)]
    for primaries in range(3, 9):
        slots = [slot for first, last in redis_cluster.slot_ranges(primaries) for slot in range(first, last + 1)]
        assert slots == list(range(16384))


NODES = """\
9ea8 127.0.0.1:6383@16383 slave bb37 0 1796387502180 2 connected
bb37 127.0.0.1:6380@16380 master - 0 1796387502079 2 connected 5461-10921
afd8 127.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460 [5461->-bb37]
82fe 127.0.0.1:6381@16381 master,fail - 0 1796387502079 3 disconnected 10922 10924-16383
"""


def test_cluster_nodes_are_read_with_their_slots_and_roles() -> None:
    peers = {peer.port: peer for peer in redis_cluster.parse_nodes(NODES)}
    assert peers[6383].primary_id == "bb37" and not peers[6383].is_primary
    assert peers[6379].slots == frozenset(range(5461)) and peers[6379].is_primary
    assert peers[6381].failing and not peers[6381].link_up
    assert peers[6381].slots == frozenset({10922, *range(10924, 16384)})


def test_each_node_is_named_after_its_program() -> None:
    nodes = redis_cluster.cluster_nodes(7379, 3)
    assert [(node.name, node.port, node.bus_port) for node in nodes[:2]] == [
        ("redis", 7379, 17379),
        ("redis-2", 7380, 17380),
    ]
    assert redis_cluster.program_at(nodes, 7384) == "redis-6"
