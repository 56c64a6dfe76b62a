"""Replicas of the gRPC services in the local stack (ATELIER_SEARCH_REPLICAS, ..._FEATURES_..., ..._RANKER_...).

Each replica is its own supervisord program: the first keeps the service's name and ports, the n-th
is `<service>-<n>` on the service's gRPC and metrics ports plus PORT_STEP * (n - 1). With the default
ports: search 50051, 50061, 50071...; ranker 50052, 50062...; features 50053, 50063...; their metrics
9464, 9474...; 9465, 9475...; 9466, 9476... (MAX_REPLICAS of each stays clear of every other port,
ATELIER_PORT_OFFSET shifting them all alike). Envoy lists every replica in its service's cluster, and
search reaches the ranker's and features' replicas through one target naming them all, which the
shared channel options balance round robin (atelier.serving.channels).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from atelier.serving.settings import Endpoints

REPLICATED = ("search", "ranker", "features")
PORT_STEP = 10
MAX_REPLICAS = 8


@dataclass(frozen=True)
class Replica:
    service: str
    number: int  # from 1
    port: int
    metrics_port: int

    @property
    def name(self) -> str:
        """The supervisord program (and its log file): search, search-2, ..."""
        return self.service if self.number == 1 else f"{self.service}-{self.number}"

    @property
    def environment(self) -> dict[str, str]:
        """The variables that put this replica on its ports (none for the first, on the service's own)."""
        if self.number == 1:
            return {}
        prefix = f"ATELIER_{self.service.upper()}"
        return {f"{prefix}_PORT": str(self.port), f"{prefix}_METRICS_PORT": str(self.metrics_port)}


def replicas(endpoints: Endpoints, service: str, count: int) -> list[Replica]:
    """The `count` replicas of `service` (one of REPLICATED), the first on the service's own ports."""
    port, metrics_port = getattr(endpoints, f"{service}_port"), getattr(endpoints, f"{service}_metrics_port")
    return [Replica(service, n + 1, port + PORT_STEP * n, metrics_port + PORT_STEP * n) for n in range(count)]


def grpc_target(endpoints: Endpoints, service: str, count: int) -> str:
    """The gRPC target of every replica of `service`: its address when there is one, else the list
    ("ipv4:127.0.0.1:50052,127.0.0.1:50062"), which gRPC resolves without DNS."""
    host = getattr(endpoints, f"{service}_host") or endpoints.host
    ports = [replica.port for replica in replicas(endpoints, service, count)]
    if count == 1:
        return f"{host}:{ports[0]}"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{count} {service} replicas need an IP address as its host, not {host!r}") from None
    if address.version == 6:
        return "ipv6:" + ",".join(f"[{host}]:{port}" for port in ports)
    return "ipv4:" + ",".join(f"{host}:{port}" for port in ports)
