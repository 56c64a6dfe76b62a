"""The Kafka topics of the click loop, created explicitly by the launcher."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from atelier.serving.config import env_int, env_str


@dataclass(frozen=True)
class Topics:
    clicks: str = "clicks"
    retry_1s: str = "clicks.retry.1s"
    retry_10s: str = "clicks.retry.10s"
    retry_60s: str = "clicks.retry.60s"
    dead_letter: str = "clicks.dlq"
    partitions: int = 4
    # The stream workers' Faust app ids (services.stream): Faust names its own
    # topics after them, and those must exist before the workers start too.
    stream_app_id: str = "atelier-stream"
    stream_retry_app_id: str = "atelier-stream-retry"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Topics:
        env = os.environ if env is None else env
        prefix = env_str(env, "ATELIER_TOPIC_PREFIX", "")
        return cls(
            clicks=prefix + cls.clicks,
            retry_1s=prefix + cls.retry_1s,
            retry_10s=prefix + cls.retry_10s,
            retry_60s=prefix + cls.retry_60s,
            dead_letter=prefix + cls.dead_letter,
            partitions=env_int(env, "ATELIER_TOPIC_PARTITIONS", cls.partitions),
            stream_app_id=env_str(env, "STREAM_APP_ID", cls.stream_app_id),
            stream_retry_app_id=env_str(env, "STREAM_RETRY_APP_ID", cls.stream_retry_app_id),
        )

    def all(self) -> tuple[str, ...]:
        return (self.clicks, self.retry_1s, self.retry_10s, self.retry_60s, self.dead_letter)

    def faust_internal(self) -> dict[str, int]:
        """Faust's own topics of the stream workers, with their partition counts.

        Only the partition assignor's leader-election topic (one partition, Faust's
        LeaderAssignor): the workers keep no Tables (no changelog topics) and make
        no agent requests (no reply topics). The broker would auto-create it with
        4 partitions when the first worker subscribes.
        """
        return {f"{app_id}-__assignor-__leader": 1 for app_id in (self.stream_app_id, self.stream_retry_app_id)}

    def partitions_by_name(self) -> dict[str, int]:
        """Every topic the launcher creates, with its partition count."""
        return {name: self.partitions for name in self.all()} | self.faust_internal()


def create_topics(bootstrap: str, topics: Topics, timeout_s: float = 10.0) -> list[str]:
    """Creates the topics that do not exist yet; returns the ones it created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = topics.partitions_by_name()
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=wanted[name], replication_factor=1) for name in missing],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    for future in futures.values():
        future.result(timeout=timeout_s)
    return missing
