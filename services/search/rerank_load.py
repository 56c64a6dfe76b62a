"""What a rerank call costs now, from what this search instance sent and how long it took.

One Triton instance scores the pairs of one call after those queued ahead of it, so a call of n pairs
sent while q pairs are still to be scored takes about (q + n) x the cost of a pair. Of the pairs in
flight, those the reranker has surely had time to score since it became busy (the time since then over
the planned cost of a pair, less the pairs of calls already answered) are counted as scored: a search arriving
near the end of another's call does not plan as if that call had just begun. The cost of a pair is learnt
from the calls sent to an empty queue (an exponentially weighted mean of their time over their pairs):
a queued call's time depends on how far the calls ahead of it had got, so it would bias the cost. A
busier or slower reranker (other search replicas, a model swap, other work on the same cores) shows up
as a dearer pair within a few calls, and a calmer one as a cheaper pair.

A call that timed out counts with the budget it used up (a lower bound of its cost); a call that
failed otherwise, or was cancelled, says nothing about the cost.

Sharing the reranker between searches. The reranker scores about 1 / cost pairs a second. While
searches ask for reranks faster than it can score each at full depth within `utilisation` of its time
(their arrival rate x full depth x cost > utilisation: with searches arriving at random, a reranker
planned fuller queues them past the budget, and the ones that find the queue full are shed), each
takes at most its fair share: `utilisation` of those pairs a second over the arrival
rate, but never less than the floor, so that under overload some searches still get a useful depth
rather than all getting a useless one (the queue's budget check sheds the rest), and at most half of
what fits the budget, so that the next search still finds room for its floor. Without the share the
first search of a burst took the whole budget and the next ones found the queue full and were shed.
Searches only compete when they overlap and the budget cannot hold a full-depth rerank and the next
search's floor besides, so the share applies only then, and only while most of them arrive with pairs
still in flight: one client in a closed loop, whose next search comes once the last is answered,
arrives as often as its own reranks allow and must not be taken for load (it reranks at full depth).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from atelier.serving.dependency import DependencyError

# Plans count a pair at its mean cost plus this many mean deviations (as TCP's retransmission timer
# does with round-trip times): on cores shared with other work the cost of a call varies by half.
DEVIATIONS = 2.0
# Searches compete for the reranker once more than this share of them arrive with pairs in flight.
COMPETING = 0.5


@dataclass
class RerankLoad:
    smoothing: float = 0.3
    """Weight of the newest call in the cost per pair and in its deviation."""
    clock: Callable[[], float] = time.monotonic
    seconds_per_pair: float | None = None
    """Mean cost of a pair; None until a call has finished: until then, nothing is known to be unaffordable."""
    deviation: float = 0.0
    """Mean absolute deviation of a call's cost per pair from the mean."""
    pairs_in_flight: int = field(default=0)
    utilisation: float = 0.8
    """Share of the reranker's pairs a second that searches plan to use."""
    arrival_smoothing: float = 0.1
    """Weight of the newest gap between searches in the mean gap."""
    overlap: float = 0.0
    """Share of recent searches that arrived with pairs in flight (exponentially weighted)."""
    mean_gap_s: float = 1.0
    """Mean time between searches asking for a rerank; it starts quiet, so that a first burst (or a
    start-up) is not taken for a rate."""
    _last_arrival: float | None = None
    _busy_since: float | None = None
    """When the pairs in flight last went from none to some."""
    _answered_since_busy: int = 0
    """Pairs of the calls answered (or given up) since then."""

    @property
    def planned_seconds_per_pair(self) -> float | None:
        """What a plan counts a pair at: its mean cost plus DEVIATIONS mean deviations."""
        return None if self.seconds_per_pair is None else self.seconds_per_pair + DEVIATIONS * self.deviation

    def pairs_to_score(self) -> int:
        """The pairs in flight less those the reranker has surely scored already: the time it has been
        busy over the planned cost of a pair (the mean would count a slow call's pairs as scored too soon
        and queue searches past their budget), less the pairs of calls answered since it became busy."""
        cost = self.planned_seconds_per_pair
        if self._busy_since is None or cost is None:
            return self.pairs_in_flight
        scored = (self.clock() - self._busy_since) / cost - self._answered_since_busy
        return self.pairs_in_flight - min(max(int(scored), 0), self.pairs_in_flight)

    def affordable_pairs(self, budget_s: float) -> int | None:
        """How many new pairs one call can send now and still be answered within `budget_s`, after
        the pairs in flight still to be scored (negative: the queue alone is over it); None while the
        cost is unknown."""
        cost = self.planned_seconds_per_pair
        if cost is None:
            return None
        return int(budget_s / cost) - self.pairs_to_score()

    def arrive(self) -> None:
        """A search asks for a rerank: counts it in the arrival rate."""
        now = self.clock()
        self.overlap += self.arrival_smoothing * (float(self.pairs_in_flight > 0) - self.overlap)
        if self._last_arrival is not None:
            self.mean_gap_s += self.arrival_smoothing * (now - self._last_arrival - self.mean_gap_s)
        self._last_arrival = now

    def share(self, full_depth: int, floor: int, budget_s: float) -> int | None:
        """The most new pairs a search may send now (None while the cost is unknown): full depth while
        searches do not compete or the budget holds it and the next search's floor besides, else the
        fair share, and at most half of what fits `budget_s`, so that the next search finds room for
        its floor."""
        planned = self.planned_seconds_per_pair
        if self.seconds_per_pair is None or planned is None:
            return None
        if (
            self.overlap <= COMPETING
            or full_depth * self.seconds_per_pair <= self.utilisation * self.mean_gap_s
            or (self.affordable_pairs(budget_s) or 0) >= full_depth + floor
        ):
            return full_depth
        fair = int(self.utilisation * self.mean_gap_s / self.seconds_per_pair)
        return max(floor, min(fair, int(budget_s / planned) // 2))

    @contextmanager
    def call(self, pairs: int) -> Iterator[None]:
        """Counts `pairs` in flight while the call runs, and records its cost when it was answered or
        timed out (a DependencyError that did not time out, or a cancellation, records nothing)."""
        ahead = self.pairs_in_flight
        started = self.clock()
        if ahead == 0:
            self._busy_since, self._answered_since_busy = started, 0
        self.pairs_in_flight += pairs
        measured = False
        try:
            yield
            measured = True
        except DependencyError as error:
            measured = error.timed_out
            raise
        finally:
            self.pairs_in_flight -= pairs
            self._answered_since_busy += pairs
            if self.pairs_in_flight == 0:
                self._busy_since = None
            if measured and ahead == 0:
                self._record((self.clock() - started) / max(pairs, 1))

    def _record(self, seconds_per_pair: float) -> None:
        if self.seconds_per_pair is None:
            self.seconds_per_pair = seconds_per_pair
            return
        error = seconds_per_pair - self.seconds_per_pair
        self.deviation += self.smoothing * (abs(error) - self.deviation)
        self.seconds_per_pair += self.smoothing * error
