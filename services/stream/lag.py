"""Consumer lag of a stream worker's group: per topic, summed over the partitions it is assigned.

Lag of a partition = its high watermark (the offset the next record will get, as the
last fetch reported it) - the group's committed offset (the next record to process).
Faust's Prometheus monitor keeps both per partition (faust.sensors.prometheus); this
module only sums them by topic into `stream_consumer_lag{topic}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import NamedTuple

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONSUMER_LAG = "stream_consumer_lag"


class Partition(NamedTuple):
    topic: str
    partition: int


def topic_lags(
    assigned: Iterable[Partition], end_offsets: Mapping[Partition, int], committed: Mapping[Partition, int]
) -> dict[str, int]:
    """Lag by topic over the assigned partitions; a partition with no end offset yet counts 0, as does
    one whose committed offset is past its end (a broker that restarted empty, until the next commit)."""
    lags: dict[str, int] = {}
    for tp in assigned:
        end = end_offsets.get(tp)
        lag = 0 if end is None else max(0, end - committed.get(tp, 0))
        lags[tp.topic] = lags.get(tp.topic, 0) + lag
    return lags


class LagCollector(Collector):
    """Computes the lag at each scrape from `figures()`: (assigned, end offsets, committed offsets)."""

    def __init__(
        self,
        figures: Callable[[], tuple[Iterable[Partition], Mapping[Partition, int], Mapping[Partition, int]]],
    ) -> None:
        self._figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            CONSUMER_LAG, "Records of the topic not yet committed by the worker's consumer group.", labels=["topic"]
        )
        for topic, lag in sorted(topic_lags(*self._figures()).items()):
            gauge.add_metric([topic], lag)
        yield gauge
