"""ATELIER_STREAM_WORKERS: the launcher's primary stream workers, one consumer group, one process each."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.serving.settings import Endpoints
from atelier.serving.topics import Topics
from atelier.stack import StackError, prometheus
from atelier.stack.components import Component
from services.stream.config import StreamSettings


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The launcher's stream worker components for a number of workers (none of its binaries needed)."""
    from atelier.stack import components

    monkeypatch.setattr(components, "redis_server_binary", lambda: Path("valkey-server"))
    monkeypatch.setattr(components, "tansu_binary", lambda: Path("tansu"))
    monkeypatch.setattr(components, "envoy_command", lambda config: ["envoy", "--config-path", str(config)])
    for name in ("STREAM_DATA_DIR", "ATELIER_TOPIC_PARTITIONS", "ATELIER_STREAM_WORKERS", "ATELIER_PORT_OFFSET"):
        monkeypatch.delenv(name, raising=False)

    def workers(count: int | None = None, partitions: int | None = None) -> list[Component]:
        if count is not None:
            monkeypatch.setenv("ATELIER_STREAM_WORKERS", str(count))
        if partitions is not None:
            monkeypatch.setenv("ATELIER_TOPIC_PARTITIONS", str(partitions))
        built = components.build_components(Endpoints.from_env({}), tmp_path)
        return [c for c in built if c.command[2:4] == ["services.stream", "worker"]]

    return workers


def test_click_topics_have_twelve_partitions_by_default() -> None:
    assert {name: Topics().partitions_by_name()[name] for name in Topics().all()} == dict.fromkeys(Topics().all(), 12)
    assert Topics.from_env({"ATELIER_TOPIC_PARTITIONS": "24"}).partitions_by_name()["clicks.retry.60s"] == 24


def test_one_primary_worker_by_default(build) -> None:
    (worker,) = build()
    assert worker.name == "stream"
    assert worker.ports == (Endpoints.from_env({}).stream_web_port,)
    assert prometheus.scrape_jobs(Endpoints.from_env({}))["stream"][0] == list(worker.ports)


def test_each_worker_joins_the_same_group_with_its_own_port_and_folder(build, tmp_path: Path) -> None:
    workers = build(3)
    assert [worker.name for worker in workers] == ["stream", "stream-2", "stream-3"]
    settings = [StreamSettings.from_env({"ATELIER_STATE_DIR": str(tmp_path), **w.environment}) for w in workers]
    assert {s.app_id for s in settings} == {"atelier-stream"}
    ports = [s.endpoints.stream_web_port for s in settings]
    assert ports == [worker.ports[0] for worker in workers] and len(set(ports)) == 3
    assert len({s.primary_data_dir for s in settings}) == 3
    assert settings[0].primary_data_dir == tmp_path / "stream"
    assert all(worker.lag is not None for worker in workers)  # `atelier status` shows each one's lag
    # The retry worker stays one, on its own port and folder.
    assert Endpoints.from_env({}).stream_retry_web_port not in ports
    assert settings[0].retry_data_dir not in {s.primary_data_dir for s in settings}


def test_prometheus_scrapes_every_primary_worker(build) -> None:
    workers = build(2)
    endpoints = Endpoints.from_env({})
    assert prometheus.scrape_jobs(endpoints, stream_workers=2)["stream"][0] == [w.ports[0] for w in workers]
    assert f"- {endpoints.address(workers[1].ports[0])}" in prometheus.render_config(endpoints, stream_workers=2)


def test_more_workers_than_partitions_is_refused(build) -> None:
    with pytest.raises(StackError, match="ATELIER_STREAM_WORKERS=5"):
        build(5, partitions=4)
