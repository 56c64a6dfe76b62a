"""How `atelier up` waits: a component that shows progress gets more time, a silent one does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from atelier.serving.settings import Endpoints
from atelier.stack import launcher, readiness
from atelier.stack.components import Component
from atelier.stack.launcher import Stack


class RunningSupervisor:
    def info(self, name: str) -> dict[str, Any]:
        return {"statename": "RUNNING", "description": ""}


class FakeStack(Stack):
    @property
    def supervisor(self) -> Any:  # type: ignore[override]
        return RunningSupervisor()


def stack(tmp_path: Path, said: list[str]) -> Stack:
    return FakeStack(Endpoints.from_env({"ATELIER_PORT_OFFSET": "3000"}), tmp_path, say=said.append)


def component(check: Any) -> Component:
    return Component(name="redis", tier=0, command=["true"], ports=(), check=check, ready_timeout_s=0.3)


def test_a_component_loading_its_data_gets_past_its_ready_timeout(tmp_path: Path) -> None:
    attempts: list[int] = []

    def check() -> None:
        attempts.append(1)
        if len(attempts) < 5:  # ~1 s of loading against a 0.3 s timeout
            raise readiness.StillStarting(f"loading its data, {len(attempts) * 20} % done")

    said: list[str] = []
    assert stack(tmp_path, said)._await_ready(component(check)) is None
    assert said[0] == "  redis loading its data, 20 % done"
    assert said[-1].startswith("  redis ready")


def test_a_component_that_only_fails_runs_out_of_time(tmp_path: Path) -> None:
    def check() -> None:
        raise ConnectionRefusedError("refused")

    failure = stack(tmp_path, [])._await_ready(component(check))
    assert failure is not None and "not ready after 0s (refused)" in failure


def test_progress_is_said_every_few_seconds_not_every_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "PROGRESS_EVERY_S", 60.0)
    attempts: list[int] = []

    def check() -> None:
        attempts.append(1)
        if len(attempts) < 4:
            raise readiness.StillStarting(f"loading its data, {len(attempts)} % done")

    said: list[str] = []
    stack(tmp_path, said)._await_ready(component(check))
    assert [line for line in said if "loading" in line] == ["  redis loading its data, 1 % done"]


class LoadingRedis:
    def __init__(self, **_: Any) -> None:
        pass

    def ping(self) -> None:
        raise redis.exceptions.BusyLoadingError("Valkey is loading the dataset in memory")

    def info(self, section: str) -> dict[str, Any]:
        assert section == "persistence"
        return {"loading": 1, "loading_loaded_perc": 42.4}

    def close(self) -> None:
        pass


def test_a_redis_loading_its_append_only_file_is_still_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis, "Redis", LoadingRedis)
    with pytest.raises(readiness.StillStarting, match="loading its data, 42 % done"):
        readiness.redis_ping("127.0.0.1", 1, "secret")
