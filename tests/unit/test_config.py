from __future__ import annotations

from pathlib import Path

import pytest

from atelier.serving.settings import Endpoints, ServerSettings


def test_defaults_are_loopback_and_conventional_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATELIER_STATE_DIR", str(tmp_path))  # no local Redis password there
    endpoints = Endpoints.from_env({})
    assert endpoints.host == "127.0.0.1"
    assert endpoints.envoy_port == 8080
    assert endpoints.envoy_admin_port == 9901
    assert endpoints.redis_url == "redis://127.0.0.1:6379/0"


def test_offset_shifts_every_default_and_explicit_ports_win() -> None:
    endpoints = Endpoints.from_env({"ATELIER_PORT_OFFSET": "10000", "ATELIER_ENVOY_PORT": "18888"})
    assert endpoints.envoy_port == 18888
    assert endpoints.envoy_admin_port == 19901
    assert endpoints.broker_bootstrap == "127.0.0.1:19092"


def test_bad_port_names_the_variable() -> None:
    with pytest.raises(ValueError, match="ATELIER_REDIS_PORT"):
        Endpoints.from_env({"ATELIER_REDIS_PORT": "six"})


def test_tracing_is_off_by_default_and_validated() -> None:
    assert ServerSettings.from_env({}).traces_exporter == "none"
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        ServerSettings.from_env({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_containers_bind_everywhere_and_name_their_peers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATELIER_STATE_DIR", str(tmp_path))  # no local Redis password there
    endpoints = Endpoints.from_env(
        {"ATELIER_BIND_HOST": "0.0.0.0", "ATELIER_REDIS_HOST": "redis", "ATELIER_MILVUS_HOST": "milvus"}
    )
    assert endpoints.listen_host == "0.0.0.0"
    assert endpoints.redis_url == "redis://redis:6379/0"
    assert endpoints.milvus_uri == "http://milvus:19530"
    assert endpoints.triton_address == "127.0.0.1:8001"
