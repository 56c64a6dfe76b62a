"""The Kafka topics of the click loop, created explicitly by the launcher."""

from __future__ import annotations

from pydantic import Field, PositiveInt
from pydantic_settings import SettingsConfigDict

from atelier.serving.settings import Settings


class ConsumerGroups(Settings):
    """The stream workers' Faust app ids (Kafka consumer groups): Faust names topics of its own after them."""

    model_config = SettingsConfigDict(env_prefix="STREAM_")

    app_id: str = "atelier-stream"
    """The primary stream worker's Faust app id (its consumer group)."""
    retry_app_id: str = "atelier-stream-retry"
    """The retry stream worker's Faust app id (its consumer group)."""


class Topics(Settings):
    model_config = SettingsConfigDict(env_prefix="ATELIER_TOPIC_")

    prefix: str = ""
    """Prepended to every click topic's name (clicks, clicks.retry.1s/10s/60s, clicks.dlq)."""
    partitions: PositiveInt = 12
    """Partitions of each click topic (clicks, the retry tiers, the dead-letter topic): the most stream
    workers of one group that get records. Sized for growth; records are keyed by user id, so each
    user's clicks stay in one partition, in order, whatever the count. Changing it on a live broker
    does not repartition existing topics (create them anew, or add partitions with Kafka's tools)."""
    groups: ConsumerGroups = Field(default_factory=ConsumerGroups)

    @property
    def clicks(self) -> str:
        return f"{self.prefix}clicks"

    @property
    def retry_1s(self) -> str:
        return f"{self.prefix}clicks.retry.1s"

    @property
    def retry_10s(self) -> str:
        return f"{self.prefix}clicks.retry.10s"

    @property
    def retry_60s(self) -> str:
        return f"{self.prefix}clicks.retry.60s"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}clicks.dlq"

    @property
    def stream_app_id(self) -> str:
        return self.groups.app_id

    @property
    def stream_retry_app_id(self) -> str:
        return self.groups.retry_app_id

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
