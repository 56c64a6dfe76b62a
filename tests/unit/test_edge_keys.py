"""The edge's API keys: stored hashed, re-read when the file changes, per-key token buckets, and the
authorization service's answers."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from atelier.edge.authz import Authorizer, build_app
from atelier.edge.dev_key import DEV_RATE_PER_S, dev_key_path, ensure_dev_key
from atelier.edge.keys import KEY_PREFIX, KeyFile, KeyFileError, hash_key
from atelier.edge.public_api import public_pool
from atelier.edge.ratelimit import TokenBuckets, retry_after
from atelier.edge.settings import KEY_NAME_HEADER, RateLimitSettings


@pytest.fixture
def keys(tmp_path: Path) -> KeyFile:
    return KeyFile(tmp_path / "api-keys.json")


def test_a_key_is_stored_only_as_its_hash(keys: KeyFile) -> None:
    key = keys.create("shop-web", rate_per_s=5, burst=10)
    assert key.startswith(KEY_PREFIX) and len(key) > 40
    text = keys.path.read_text()
    assert key not in text
    (entry,) = json.loads(text)["keys"]
    assert entry["name"] == "shop-web" and entry["sha256"] == hash_key(key)
    assert (entry["rate_per_s"], entry["burst"]) == (5, 10)
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600


def test_lookup_finds_the_key_by_its_hash(keys: KeyFile) -> None:
    key = keys.create("a")
    found = keys.lookup(key)
    assert found is not None and found.name == "a"
    assert keys.lookup(key + "x") is None
    assert keys.lookup("") is None


def test_creating_and_revoking_take_effect_in_a_reader_without_restarting_it(tmp_path: Path) -> None:
    reader = KeyFile(tmp_path / "api-keys.json")
    writer = KeyFile(tmp_path / "api-keys.json")  # another process: `atelier keys`
    assert reader.lookup("atk_anything") is None
    key = writer.create("late")
    assert reader.lookup(key).name == "late"
    writer.revoke("late")
    assert reader.lookup(key) is None


def test_a_broken_key_file_keeps_the_keys_already_read(keys: KeyFile) -> None:
    key = keys.create("a")
    assert keys.lookup(key) is not None
    keys.path.write_text("{ half a file")
    assert keys.lookup(key) is not None


def test_names_are_checked_and_unique(keys: KeyFile) -> None:
    keys.create("a")
    with pytest.raises(KeyFileError, match="exists"):
        keys.create("a")
    with pytest.raises(KeyFileError, match="bad key name"):
        keys.create("has space")
    with pytest.raises(KeyFileError, match="no key named"):
        keys.revoke("b")


def test_the_dev_key_is_made_once_and_remade_when_lost(keys: KeyFile, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert ensure_dev_key(keys, state)
    path = dev_key_path(state)
    key = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.lookup(key).rate_per_s == DEV_RATE_PER_S
    assert not ensure_dev_key(keys, state)
    path.unlink()
    assert ensure_dev_key(keys, state)
    assert keys.lookup(key) is None  # the lost one is revoked
    assert [k.name for k in keys.keys()] == ["dev"]


def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    assert [buckets.take("a", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 2.0, 3) == pytest.approx(0.5)
    assert buckets.take("b", 2.0, 3) == 0.0  # each key has its own bucket
    now[0] = 0.5
    assert buckets.take("a", 2.0, 3) == 0.0
    assert buckets.take("a", 2.0, 3) > 0
    now[0] = 100.0
    assert [buckets.take("a", 2.0, 3) for _ in range(4)][-1] > 0  # refilled to the burst, no more


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(2.2) == "3"


async def _client(keys: KeyFile) -> TestClient:
    client = TestClient(TestServer(build_app(Authorizer(keys, RateLimitSettings(rate_per_s=1, burst=2)))))
    await client.start_server()
    return client


async def test_the_authorizer_names_the_key_or_answers_a_status(keys: KeyFile) -> None:
    key = keys.create("shop")
    client = await _client(keys)
    try:
        response = await client.get("/check/v1/search", headers={"x-api-key": key})
        assert response.status == 200 and response.headers[KEY_NAME_HEADER] == "shop"

        response = await client.get("/check/v1/search")
        body = await response.json()
        assert response.status == 401 and response.content_type == "application/json"
        assert body["code"] == 16 and "x-api-key" in body["message"] and body["details"] == []

        response = await client.post(
            "/check/fashion.v1.SearchService/SearchText",
            headers={"x-api-key": "atk_wrong", "x-atelier-grpc": "1"},
        )
        assert response.status == 401 and response.headers["grpc-status"] == "16"

        await client.get("/check/v1/search", headers={"x-api-key": key})  # the burst (2) is spent
        response = await client.get("/check/v1/search", headers={"x-api-key": key})
        assert response.status == 429 and response.headers["retry-after"] == "1"
        assert (await response.json())["code"] == 8
        assert (await client.get("/ready")).status == 200
    finally:
        await client.close()


def test_public_reflection_describes_only_routed_methods() -> None:
    from fashion.v1 import features_service_pb2, ranker_service_pb2, search_service_pb2

    pool, services = public_pool(
        [search_service_pb2.DESCRIPTOR, features_service_pb2.DESCRIPTOR, ranker_service_pb2.DESCRIPTOR]
    )
    assert services == ["fashion.v1.SearchService", "fashion.v1.FeaturesService"]
    features = pool.FindServiceByName("fashion.v1.FeaturesService")
    assert [m.name for m in features.methods] == ["GetUserFeatures", "ListPopularItems"]
    with pytest.raises(KeyError):
        pool.FindServiceByName("fashion.v1.RankerService")
