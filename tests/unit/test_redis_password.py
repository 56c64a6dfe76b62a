"""Redis' password: where clients read it (Endpoints), and the local stack's, which `atelier up` draws."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from atelier.serving.settings import Endpoints, SettingsError
from atelier.stack import components


@pytest.fixture(autouse=True)
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("ATELIER_STATE_DIR", str(folder))
    return folder


def test_no_password_anywhere_means_none_in_the_url() -> None:
    endpoints = Endpoints.from_env({})
    assert endpoints.redis_auth() is None
    assert endpoints.redis_url == "redis://127.0.0.1:6379/0"


def test_the_variable_goes_into_the_url_encoded() -> None:
    endpoints = Endpoints.from_env({"ATELIER_REDIS_PASSWORD": "p@ss:w/rd", "ATELIER_REDIS_HOST": "redis"})
    assert endpoints.redis_url == "redis://:p%40ss%3Aw%2Frd@redis:6379/0"


def test_a_named_file_is_read_and_a_missing_one_names_the_variable(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-secret\n")
    assert Endpoints.from_env({"ATELIER_REDIS_PASSWORD_FILE": str(secret)}).redis_auth() == "from-a-secret"
    missing = Endpoints.from_env({"ATELIER_REDIS_PASSWORD_FILE": str(tmp_path / "none")})
    with pytest.raises(SettingsError, match="ATELIER_REDIS_PASSWORD_FILE"):
        _ = missing.redis_url


def test_the_local_stacks_password_is_found_by_settings_loaded_before_it_was_written(state: Path) -> None:
    endpoints = Endpoints.from_env({})  # as the launcher and the tests load them, before `up`
    password = components.redis_password(endpoints, state)
    assert endpoints.redis_auth() == password
    assert endpoints.redis_url == f"redis://:{password}@127.0.0.1:6379/0"


def test_the_password_is_never_shown() -> None:
    endpoints = Endpoints.from_env({"ATELIER_REDIS_PASSWORD": "do-not-print"})
    assert "do-not-print" not in repr(endpoints)
    assert "do-not-print" not in str([variable.value for variable in endpoints.effective()])


def test_up_draws_a_private_password_once_and_keeps_it(state: Path) -> None:
    endpoints = Endpoints.from_env({})
    first = components.redis_password(endpoints, state)
    path = state / "redis-password"
    assert len(first) == 64 and int(first, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert components.redis_password(endpoints, state) == first
    path.unlink()  # rotation: remove it, and the next `up` draws another
    assert components.redis_password(endpoints, state) != first


def test_a_chosen_password_is_the_local_redis_password(state: Path) -> None:
    endpoints = Endpoints.from_env({"ATELIER_REDIS_PASSWORD": "chosen"})
    assert components.redis_password(endpoints, state) == "chosen"


def test_redis_reads_its_password_from_a_private_config_file(
    state: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(components, "redis_server_binary", lambda: Path("valkey-server"))
    monkeypatch.setattr(components, "tansu_binary", lambda: Path("tansu"))
    monkeypatch.setattr(components, "envoy_command", lambda config: ["envoy", "--config-path", str(config)])
    endpoints = Endpoints.from_env({})
    (redis,) = [c for c in components.build_components(endpoints, state) if c.name == "redis"]
    password = (state / "redis-password").read_text().strip()
    config = Path(redis.command[1])
    assert config.read_text() == f'requirepass "{password}"\n'
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert password not in " ".join(redis.command)
    assert components.redis_config('a"b\\c', tmp_path).read_text() == 'requirepass "a\\"b\\\\c"\n'
