"""Internal APIs of the local stack: Redis refuses a client without its password; the servers behind
Envoy, and Envoy's admin interface, listen on loopback only."""

from __future__ import annotations

import ipaddress
import stat
import urllib.error
import urllib.request

import pytest
import redis

from atelier.serving.settings import REDIS_PASSWORD_FILE
from atelier.stack.launcher import Stack
from atelier.stack.milvus_runner import derive_ports


def test_redis_refuses_a_client_without_the_password(stack: Stack) -> None:
    endpoints = stack.endpoints
    anonymous = redis.Redis(host=endpoints.host, port=endpoints.redis_port, socket_timeout=5)
    wrong = redis.Redis(host=endpoints.host, port=endpoints.redis_port, password="wrong", socket_timeout=5)  # noqa: S106
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("anything")
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
    finally:
        anonymous.close()
        wrong.close()
    # The password `up` drew, readable by its owner only; the settings' URL carries it.
    password_file = stack.state / REDIS_PASSWORD_FILE
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    client = redis.Redis.from_url(endpoints.redis_url, socket_timeout=5)
    try:
        assert client.ping()
    finally:
        client.close()


def listening_addresses(port: int) -> set[str]:
    """The addresses a TCP socket listens on at `port` (Linux's /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                    continue
                raw = bytes.fromhex(address)
                # The kernel writes each 32-bit word in host (little-endian) order.
                ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                listening = ipaddress.ip_address(ordered)
                # A v6 socket bound to ::ffff:127.0.0.1 (Triton's) is IPv4's loopback.
                mapped = getattr(listening, "ipv4_mapped", None)
                found.add(str(mapped or listening))
    return found


def test_internal_servers_and_envoy_admin_listen_on_loopback_only(stack: Stack) -> None:
    endpoints = stack.endpoints
    internal = {
        "redis": [endpoints.redis_port],
        "milvus": list(derive_ports(endpoints.milvus_port).values()),
        "triton": [endpoints.triton_grpc_port, endpoints.triton_http_port, endpoints.triton_metrics_port],
        "envoy admin": [endpoints.envoy_admin_port],
    }
    for name, ports in internal.items():
        # Its main port listens (Milvus' derived ports: only those its configuration uses).
        assert listening_addresses(ports[0]), f"{name}: nothing listens on {ports[0]}"
        for port in ports:
            addresses = listening_addresses(port)
            assert addresses <= {"127.0.0.1", "::1"}, f"{name} listens on {addresses}:{port}"
    # The stats listener serves /ready and metrics, and nothing else of the admin interface.
    stats = f"http://{endpoints.address(endpoints.envoy_stats_port)}"
    with urllib.request.urlopen(f"{stats}/ready", timeout=5) as response:
        assert response.read().decode().strip() == "LIVE"
    for path in ("/config_dump", "/clusters", "/quitquitquit", "/runtime_modify"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{stats}{path}", method="POST"), timeout=5)
        assert refused.value.code == 404, path
