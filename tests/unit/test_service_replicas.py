"""Replicas of search, ranker and features in the local stack (ATELIER_<SERVICE>_REPLICAS): each its own
program on ports of its own, every one in Envoy's cluster and Prometheus' job, search calling every
ranker and features replica."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from atelier.serving.settings import Endpoints, SettingsError
from atelier.stack import components, envoy, prometheus
from atelier.stack.components import Component
from atelier.stack.replicas import MAX_REPLICAS, REPLICATED, grpc_target, replicas
from atelier.stack.settings import LauncherSettings
from services.search.config import SearchSettings

HEALTH = {
    "search": "fashion.v1.SearchService",
    "ranker": "fashion.v1.RankerService",
    "features": "fashion.v1.FeaturesService",
}


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[dict[str, str]], list[Component]]:
    """The launcher's components with the given ATELIER_* variables (none of its binaries needed)."""
    monkeypatch.setattr(components, "redis_server_binary", lambda: Path("valkey-server"))
    monkeypatch.setattr(components, "tansu_binary", lambda: Path("tansu"))
    monkeypatch.setattr(components, "envoy_command", lambda config: ["envoy", "--config-path", str(config)])

    def built(environment: dict[str, str]) -> list[Component]:
        for name in [name for name in os.environ if name.endswith(("_REPLICAS", "_TARGET"))]:
            monkeypatch.delenv(name)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return components.build_components(Endpoints.from_env({}), tmp_path)

    return built


def test_one_of_each_by_default(build: Callable[[dict[str, str]], list[Component]]) -> None:
    names = [c.name for c in build({})]
    for service in REPLICATED:
        assert names.count(service) == 1
        assert not [name for name in names if name.startswith(f"{service}-")]
    search = next(c for c in build({}) if c.name == "search")
    assert not {"ATELIER_RANKER_TARGET", "ATELIER_FEATURES_TARGET"} & set(search.environment)


def test_each_replica_is_a_program_on_ports_of_its_own(build: Callable[[dict[str, str]], list[Component]]) -> None:
    most = {f"ATELIER_{service.upper()}_REPLICAS": str(MAX_REPLICAS) for service in REPLICATED}
    built = build(most)
    by_name = {c.name: c for c in built}
    for service in REPLICATED:
        names = [service, *(f"{service}-{n}" for n in range(2, MAX_REPLICAS + 1))]
        assert set(names) <= set(by_name)
        for name in names[1:]:
            environment = by_name[name].environment
            prefix = f"ATELIER_{service.upper()}"
            # The replica's service reads its ports from these, as any service does.
            endpoints = Endpoints.from_env(environment)
            assert (getattr(endpoints, f"{service}_port"), getattr(endpoints, f"{service}_metrics_port")) == by_name[
                name
            ].ports
            assert by_name[name].command == by_name[service].command
            assert {f"{prefix}_PORT", f"{prefix}_METRICS_PORT"} <= set(environment)
    # No two components of the stack share a port, with the most replicas of each, default ports or shifted.
    for offset in ("0", "3000"):
        ports = [port for c in build(most | {"ATELIER_PORT_OFFSET": offset}) for port in c.ports]
        assert len(ports) == len(set(ports)), sorted(p for p in ports if ports.count(p) > 1)


def test_search_calls_every_ranker_and_features_replica(build: Callable[[dict[str, str]], list[Component]]) -> None:
    built = build({"ATELIER_SEARCH_REPLICAS": "2", "ATELIER_RANKER_REPLICAS": "2", "ATELIER_FEATURES_REPLICAS": "3"})
    by_name = {c.name: c for c in built}
    for search in (by_name["search"], by_name["search-2"]):
        endpoints = Endpoints.from_env(search.environment)
        ranker_ports = [by_name[name].ports[0] for name in ("ranker", "ranker-2")]
        features_ports = [by_name[name].ports[0] for name in ("features", "features-2", "features-3")]
        assert endpoints.ranker_address == "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ranker_ports)
        assert endpoints.features_address == "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in features_ports)
        # Search's own settings accept them (it owns SEARCH_*; these are ATELIER_*).
        assert SearchSettings.from_env(search.environment).endpoints.ranker_address == endpoints.ranker_address


def test_a_target_of_one_is_its_address_and_several_need_an_ip() -> None:
    endpoints = Endpoints.from_env({})
    assert grpc_target(endpoints, "ranker", 1) == endpoints.ranker_address
    named = Endpoints.from_env({"ATELIER_RANKER_HOST": "ranker"})
    assert grpc_target(named, "ranker", 1) == "ranker:50052"
    with pytest.raises(ValueError, match="IP address"):
        grpc_target(named, "ranker", 2)


@pytest.mark.parametrize("value", ["0", str(MAX_REPLICAS + 1)])
def test_a_replica_count_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="ATELIER_SEARCH_REPLICAS"):
        LauncherSettings.from_env({"ATELIER_SEARCH_REPLICAS": value})


def test_envoy_balances_and_health_checks_every_replica() -> None:
    endpoints = Endpoints.from_env({"ATELIER_PORT_OFFSET": "3000"})
    counts = {"search": 2, "ranker": 3, "features": 1}
    config = yaml.safe_load(envoy.render_config(endpoints, replica_counts=counts))
    clusters = {cluster["name"]: cluster for cluster in config["static_resources"]["clusters"]}
    for service, count in counts.items():
        cluster = clusters[service]
        (locality,) = cluster["load_assignment"]["endpoints"]
        listed = [e["endpoint"]["address"]["socket_address"] for e in locality["lb_endpoints"]]
        assert listed == [
            {"address": "127.0.0.1", "port_value": replica.port} for replica in replicas(endpoints, service, count)
        ]
        (check,) = cluster["health_checks"]
        assert check["grpc_health_check"]["service_name"] == HEALTH[service]
    # A request that never reached a replica (down, refusing) goes to another one.
    (host,) = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]["virtual_hosts"]
    assert "connect-failure" in host["retry_policy"]["retry_on"]


def test_prometheus_scrapes_every_replica() -> None:
    endpoints = Endpoints.from_env({})
    config = yaml.safe_load(prometheus.render_config(endpoints, replica_counts={"search": 2, "ranker": 2}))
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets["search"] == ["127.0.0.1:9464", "127.0.0.1:9474"]
    assert targets["ranker"] == ["127.0.0.1:9465", "127.0.0.1:9475"]
    assert targets["features"] == ["127.0.0.1:9466"]
