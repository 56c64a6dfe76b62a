"""Both stream workers as real processes against a real broker (Tansu) and Redis (Valkey).

Everything runs on ports of 27850-27899 with its state in a temporary folder;
the retry tiers' delays are shortened so that a Redis outage is retried in seconds.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from atelier.serving import item_store
from atelier.serving.click_event import ClickRecord, RecordHeader
from atelier.serving.feature_store import keys
from atelier.serving.settings import ROOT
from atelier.serving.topics import Topics
from atelier.stack import readiness
from atelier.stack.components import LOCAL_BROKER_GROUP_TIMING, redis_server_binary, tansu_binary

HOST = "127.0.0.1"
PORTS = range(27850, 27900)  # below the ephemeral range (32768-60999)
RETRY_DELAYS_S = (0.5, 1.0, 1.5)
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# The articles the tests click on: the workers apply clicks on catalogue articles only.
CATALOGUE = ("0108775015", "item-0", "item-1", "item-2")


def free_ports(count: int) -> list[int]:
    candidates = [port for port in PORTS if not readiness.port_in_use(HOST, port)]
    if len(candidates) < count:
        pytest.skip(f"fewer than {count} free ports in {PORTS}")
    return random.sample(candidates, count)


@dataclass
class Cluster:
    bootstrap: str
    topics: Topics
    redis: redis.Redis
    processes: dict[str, subprocess.Popen]
    logs: dict[str, Path]
    commands: dict[str, list[str]]
    env: dict[str, str]
    state: Path
    # Each worker's web server (readiness, metrics).
    web: dict[str, str]

    def tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-lines:])

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited ({process.returncode}):\n{self.tail(name)}"


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, cluster: Cluster | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if cluster is not None:
            cluster.assert_running()
        try:
            if condition():
                return
        except Exception as error:  # noqa: BLE001 (not ready yet)
            last_error = error
        time.sleep(0.05)
    logs = "" if cluster is None else "\n".join(f"--- {n}\n{cluster.tail(n)}" for n in ("stream", "stream-retry"))
    raise AssertionError(f"{what}: not within {timeout_s}s ({last_error})\n{logs}")


def start(name: str, command: list[str], env: dict[str, str], logs: Path) -> tuple[subprocess.Popen, Path]:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, log


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("stream-workers")
    (redis_port,) = free_ports(1)
    redis_command = [
        str(redis_server_binary()),
        *("--bind", HOST, "--port", str(redis_port), "--dir", str(state)),
        *("--save", "", "--appendonly", "no", "--daemonize", "no"),
    ]
    client = redis.Redis(host=HOST, port=redis_port, socket_timeout=5, decode_responses=True)
    with stream_group(state, redis_port, client, {"redis": redis_command}) as group:
        yield group


@contextmanager
def stream_group(
    state: Path,
    redis_port: int,
    client: redis.Redis,
    redis_servers: dict[str, list[str]],
    extra_env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """A broker, `redis_servers` (none: Redis runs elsewhere) and both stream workers, as the launcher runs
    them, Redis reached at `redis_port` through `client`; the catalogue's articles written first."""
    broker_port, web_port, retry_web_port = [port for port in free_ports(4) if port != redis_port][:3]
    bootstrap = f"{HOST}:{broker_port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ATELIER_", "STREAM_"))}
    env |= {
        "ATELIER_BROKER_PORT": str(broker_port),
        "ATELIER_REDIS_PORT": str(redis_port),
        "ATELIER_STREAM_WEB_PORT": str(web_port),
        "ATELIER_STREAM_RETRY_WEB_PORT": str(retry_web_port),
        "ATELIER_STATE_DIR": str(state),
        "STREAM_RETRY_DELAYS_S": ",".join(map(str, RETRY_DELAYS_S)),
        "STREAM_APPLY_TIMEOUT_S": "0.5",
        "STREAM_REDIS_TIMEOUT_S": "0.25",
        "STREAM_REDIS_CONNECT_TIMEOUT_S": "0.25",
        "PYTHONUNBUFFERED": "1",
    }
    env |= LOCAL_BROKER_GROUP_TIMING  # as `atelier up` runs them on its broker (Tansu)
    env |= extra_env or {}
    topics = Topics.from_env(env)
    processes: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    servers = {
        # As the launcher runs it: the wrapper creates the topics each time Tansu starts.
        "broker": [
            sys.executable,
            "-m",
            "atelier.stack.broker",
            str(tansu_binary()),
            "broker",
            "--listener-url",
            f"tcp://{bootstrap}",
            "--advertised-listener-url",
            f"tcp://{bootstrap}",
            "--storage-engine",
            "memory://tansu/",
        ],
        **redis_servers,
    }
    web = {"stream": f"http://{HOST}:{web_port}", "stream-retry": f"http://{HOST}:{retry_web_port}"}
    cluster = Cluster(bootstrap, topics, client, processes, logs, dict(servers), env, state, web)
    try:
        for name, command in servers.items():
            processes[name], logs[name] = start(name, command, env, state)
        wait_for(lambda: readiness.broker_topics(bootstrap, tuple(topics.partitions_by_name())) or True, 20, "topics")
        wait_for(lambda: client.ping(), 20, "redis ready", cluster)
        item_store.write_items(client, [{"article_id": article, "category": "Trousers"} for article in CATALOGUE])
        for name, module in (("stream", "services.stream"), ("stream-retry", "services.stream.retry")):
            command = [sys.executable, "-m", module, "worker", "--loglevel", "info"]
            processes[name], logs[name] = start(name, command, env, state)
        await_workers_ready(cluster)
        yield cluster
    finally:
        client.close()
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def await_workers_ready(cluster: Cluster) -> None:
    """Both workers have joined their consumer groups (partitions assigned)."""
    for name, url in cluster.web.items():
        wait_for(lambda url=url: readiness.stream_worker_ready(url) or True, 60, f"{name} joined its group", cluster)


def click(event_id: str, user_id: str, item_id: str = "0108775015") -> ClickRecord:
    return ClickRecord(event_id, user_id, item_id, 0, "search", "web", time.time_ns() // 1_000_000)


def produce(cluster: Cluster, records: list[tuple[bytes, bytes]]) -> None:
    """(key, value) records with a traceparent, once the broker acknowledged every one."""
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []
    for key, value in records:
        producer.produce(
            cluster.topics.clicks,
            key=key,
            value=value,
            headers=[(RecordHeader.TRACEPARENT, TRACEPARENT)],
            on_delivery=lambda error, _: error and failures.append(str(error)),
        )
    assert producer.flush(10) == 0 and not failures, failures


def read_topic(cluster: Cluster, topic: str, until: Callable[[list], bool], timeout_s: float = 10) -> list:
    """Every record of `topic` from its start, once `until(records)` holds."""
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, 0) for partition in range(cluster.topics.partitions)])
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(records) and time.monotonic() < deadline:
            records += [record for record in consumer.consume(100, timeout=0.2) if record.error() is None]
    finally:
        consumer.close()
    return records


def applied(cluster: Cluster, clicks: list[ClickRecord]) -> int:
    return sum(cluster.redis.exists(keys.dedupe(c.user_id, c.event_id)) for c in clicks)


def test_clicks_are_applied_to_redis(cluster: Cluster) -> None:
    run = uuid.uuid4().hex[:8]
    clicks = [click(f"{run}-{i}", f"user-{run}-{i % 5}", f"item-{i % 3}") for i in range(50)]
    produce(cluster, [(c.user_id.encode(), c.to_json()) for c in clicks])
    wait_for(lambda: applied(cluster, clicks) == 50, 20, "all clicks applied", cluster)
    recent = cluster.redis.lrange(keys.user_recent(f"user-{run}-0"), 0, -1)
    assert len(recent) == 10 and all(entry.startswith("item-") for entry in recent)


def test_each_worker_exports_its_consumer_lag_by_topic(cluster: Cluster) -> None:
    topics = cluster.topics
    wait_for(lambda: readiness.stream_lag(cluster.web["stream"]) == {topics.clicks: 0}, 20, "no lag", cluster)
    retry = readiness.stream_lag(cluster.web["stream-retry"])
    assert set(retry) == {topics.retry_1s, topics.retry_10s, topics.retry_60s}
    # A worker that has not joined its group is not ready: its web server says 503 (urllib raises).
    assert '"ready":true' in readiness.http_ok(cluster.web["stream"] + "/ready/").replace(" ", "")


def test_faust_uses_no_topic_the_launcher_does_not_create(cluster: Cluster) -> None:
    """Tansu would auto-create a missing one with 4 partitions (Faust's leader topic wants 1)."""
    from confluent_kafka.admin import AdminClient

    listed = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(timeout=5).topics
    found = {name: len(topic.partitions) for name, topic in listed.items() if not name.startswith("__")}
    assert found == cluster.topics.partitions_by_name()


def test_click_reaches_redis_within_a_few_fetches(cluster: Cluster) -> None:
    """With Faust's hard-coded 1.5 s fetch wait the median here was ~700 ms; configured 50 ms, ~35 ms."""
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all"})
    latencies = []
    for i in range(15):
        record = click(f"latency-{uuid.uuid4().hex}", f"latency-user-{i}")
        started = time.perf_counter()
        producer.produce(cluster.topics.clicks, key=record.user_id.encode(), value=record.to_json())
        producer.poll(0)
        wait_for(lambda record=record: applied(cluster, [record]), 10, "click applied", cluster)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    producer.flush(5)
    assert statistics.median(latencies) < 0.5, latencies


def test_malformed_record_goes_to_the_dead_letter_topic_and_the_worker_goes_on(cluster: Cluster) -> None:
    marker = f"malformed-{uuid.uuid4().hex}".encode()
    good = click(f"after-{uuid.uuid4().hex}", "dlq-user")
    produce(cluster, [(b"dlq-user", b"{" + marker), (b"dlq-user", good.to_json())])
    wait_for(lambda: applied(cluster, [good]) == 1, 20, "the click after it applied", cluster)
    dead = read_topic(cluster, cluster.topics.dead_letter, lambda found: any(marker in r.value() for r in found))
    (record,) = [r for r in dead if marker in r.value()]
    headers = dict(record.headers())
    assert headers[RecordHeader.ERROR].startswith(b"invalid click: undecodable JSON")
    assert headers[RecordHeader.ORIGIN_TOPIC] == cluster.topics.clicks.encode()
    assert headers[RecordHeader.TRACEPARENT] == TRACEPARENT and record.key() == b"dlq-user"


def test_redis_outage_is_retried_through_the_tiers_without_loss_or_double_apply(cluster: Cluster) -> None:
    run = uuid.uuid4().hex[:8]
    clicks = [click(f"outage-{run}-{i}", f"outage-{run}-user-{i}") for i in range(40)]
    redis_process = cluster.processes["redis"]
    redis_process.send_signal(signal.SIGSTOP)
    try:
        produce(cluster, [(c.user_id.encode(), c.to_json()) for c in clicks])
        retried = read_topic(
            cluster, cluster.topics.retry_1s, lambda found: sum(run.encode() in r.value() for r in found) >= 40
        )
        time.sleep(1.5)  # long enough for a second failure: the later tiers are used too
    finally:
        redis_process.send_signal(signal.SIGCONT)
    wait_for(lambda: applied(cluster, clicks) == len(clicks), 20, "all clicks applied after the outage", cluster)

    ours = [r for r in retried if run.encode() in r.value()]
    assert len({r.value() for r in ours}) == len(clicks), "every click of the outage went to the first retry tier"
    for record in ours:
        headers = dict(record.headers())
        assert headers[RecordHeader.RETRY_ATTEMPT] == b"1" and headers[RecordHeader.TRACEPARENT] == TRACEPARENT
    later = read_topic(cluster, cluster.topics.retry_10s, lambda found: any(run.encode() in r.value() for r in found))
    assert any(run.encode() in r.value() for r in later), "the outage outlasted the first tier"
    # Applied exactly once: each user's recent list holds one entry (a second apply would add one).
    for c in clicks:
        assert cluster.redis.llen(keys.user_recent(c.user_id)) == 1
    dead = read_topic(cluster, cluster.topics.dead_letter, lambda found: False, timeout_s=1.5)
    assert not any(run.encode() in r.value() for r in dead)


def test_after_a_broker_restart_the_topics_are_back_and_the_workers_rejoin_and_apply(cluster: Cluster) -> None:
    """The memory-only broker comes back empty; its wrapper creates the topics again, the workers
    (whose committed offsets are gone, and whose positions are past the new topics' ends) rejoin
    and apply what is produced from then on."""
    before = [click(f"before-{uuid.uuid4().hex}", f"before-user-{i}") for i in range(20)]
    produce(cluster, [(c.user_id.encode(), c.to_json()) for c in before])
    wait_for(lambda: applied(cluster, before) == len(before), 20, "clicks applied before the restart", cluster)
    broker = cluster.processes["broker"]
    broker.kill()
    broker.wait()
    cluster.processes["broker"], _ = start("broker-again", cluster.commands["broker"], cluster.env, cluster.state)
    names = tuple(cluster.topics.partitions_by_name())
    wait_for(lambda: readiness.broker_topics(cluster.bootstrap, names) or True, 20, "topics again", cluster)
    after = [click(f"after-{uuid.uuid4().hex}", f"after-user-{i}") for i in range(20)]
    produce(cluster, [(c.user_id.encode(), c.to_json()) for c in after])
    wait_for(lambda: applied(cluster, after) == len(after), 60, "clicks applied after the restart", cluster)
    await_workers_ready(cluster)
    for c in after:
        assert cluster.redis.llen(keys.user_recent(c.user_id)) == 1


def test_workers_stop_cleanly_on_sigterm_and_a_waiting_retry_is_kept(cluster: Cluster) -> None:
    waiting = click(f"waiting-{uuid.uuid4().hex}", "waiting-user")
    due_ms = time.time_ns() // 1_000_000 + 60_000
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all"})
    headers = [
        (RecordHeader.RETRY_ATTEMPT, b"3"),
        (RecordHeader.RETRY_DUE, str(due_ms).encode()),
        (RecordHeader.TRACEPARENT, TRACEPARENT),
    ]
    producer.produce(cluster.topics.retry_60s, key=b"waiting-user", value=waiting.to_json(), headers=headers)
    assert producer.flush(10) == 0
    time.sleep(1.0)  # the retry worker now holds it, waiting
    for name in ("stream", "stream-retry"):
        process = cluster.processes[name]
        started = time.monotonic()
        process.terminate()
        assert process.wait(timeout=20) == 0, cluster.tail(name)
        assert time.monotonic() - started < 10, f"{name} took {time.monotonic() - started:.1f}s to stop"
    assert applied(cluster, [waiting]) == 0, "applied before it was due"
    # Not yet due when the worker stopped: published again, unchanged, to its own tier.
    copies = read_topic(
        cluster, cluster.topics.retry_60s, lambda found: sum(r.value() == waiting.to_json() for r in found) >= 2
    )
    assert [dict(r.headers()) for r in copies if r.value() == waiting.to_json()] == [dict(headers)] * 2
