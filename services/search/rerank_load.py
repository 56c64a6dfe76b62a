"""What a rerank call costs now, from what this search instance sent and how long it took.

A call of n pairs costs a fixed part (the round trip, Triton's queue and its Python stub, tokenising)
plus n x the cost of a pair: on 2 cores ~12 ms + 0.63 ms a pair for the 48-token reranker, so 20 pairs
cost 1.4 ms a pair and 100 pairs 0.75 (docs/performance.md); a cost per pair alone, learnt from calls
of every depth, counted each full-depth call ~1.5x too dear after a few shallow ones and shed searches
that had room. Both parts are learnt from the calls sent to an empty queue, by exponentially weighted
least squares of their time on their pairs (a queued call's time depends on how far the calls ahead of
it had got, so it would bias the cost); while the calls all have about the same depth (one client in a
closed loop) the fixed part cannot be told apart and keeps its last estimate. A busier or slower
reranker (other search replicas, a model swap, other work on the same cores) shows up as a dearer call
within a few calls, and a calmer one as a cheaper call. Plans count the work they wait for (the calls in
flight and their own) at its predicted cost plus DEVIATIONS mean deviations of it: a call's deviation
(relative to its prediction) over the square root of the calls, as the deviation of a sum of k calls that
vary independently is sqrt(k) times one call's, not k times (counted k times, a search arriving behind two
full-depth calls planned their ~130 ms as ~240 ms, and was shed with the budget half unused).

A call is all of one search's pairs: where Triton runs several instances of the reranker, the call
goes as one slice per instance and they score the slices side by side (atelier/serving/reranking.py),
so the costs learnt are those of the instances together. The searches' calls run one after another,
so a call sent while calls are in flight is answered once their work and its own is done. Of the work
in flight, what the reranker has surely done since it became busy (the time since then, less the
planned work of calls already answered) is counted as done: a search arriving near the end of
another's call does not plan as if that call had just begun.

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

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from atelier.serving.dependency import DependencyError

# Plans count a call at its predicted cost plus this many mean deviations (as TCP's retransmission timer
# does with round-trip times): on cores shared with other work the cost of a call varies by half.
DEVIATIONS = 2.0
# Searches compete for the reranker once more than this share of them arrive with pairs in flight.
COMPETING = 0.5
# The fixed part of a call is estimated only while the depths of recent calls vary by at least this
# share of their mean (their standard deviation): calls of one depth cannot tell it apart.
DEPTH_SPREAD = 0.2


@dataclass
class CallSizes:
    """Exponentially weighted moments of the calls' pairs (n) and times (t)."""

    n: float
    t: float
    nn: float
    nt: float

    def add(self, weight: float, pairs: float, seconds: float) -> None:
        self.n += weight * (pairs - self.n)
        self.t += weight * (seconds - self.t)
        self.nn += weight * (pairs * pairs - self.nn)
        self.nt += weight * (pairs * seconds - self.nt)


@dataclass
class RerankLoad:
    smoothing: float = 0.3
    """Weight of the newest call in the cost of a call and in its deviation."""
    clock: Callable[[], float] = time.monotonic
    seconds_per_pair: float | None = None
    """Mean cost of a pair beyond the fixed part of a call; None until a call has finished: until then,
    nothing is known to be unaffordable."""
    seconds_per_call: float = 0.0
    """Mean fixed part of a call, whatever its pairs."""
    deviation: float = 0.0
    """Mean absolute deviation of a call's time from its prediction, as a share of the prediction."""
    pairs_in_flight: int = field(default=0)
    calls_in_flight: int = field(default=0)
    utilisation: float = 0.8
    """Share of the reranker's time that searches plan to use."""
    arrival_smoothing: float = 0.1
    """Weight of the newest gap between searches in the mean gap."""
    overlap: float = 0.0
    """Share of recent searches that arrived with pairs in flight (exponentially weighted)."""
    mean_gap_s: float = 1.0
    """Mean time between searches asking for a rerank; it starts quiet, so that a first burst (or a
    start-up) is not taken for a rate."""
    _sizes: CallSizes | None = None
    _last_arrival: float | None = None
    _busy_since: float | None = None
    """When the calls in flight last went from none to some."""
    _answered_since_busy: tuple[int, int] = (0, 0)
    """Calls and pairs answered (or given up) since then."""

    def call_seconds(self, pairs: int, calls: int = 1) -> float | None:
        """The mean cost of `calls` calls of `pairs` pairs in all; None while unknown."""
        if self.seconds_per_pair is None:
            return None
        return calls * self.seconds_per_call + pairs * self.seconds_per_pair

    def margin(self, calls: int = 1) -> float:
        """What a plan waiting for `calls` calls counts their work at, as a multiple of its mean: the mean
        plus DEVIATIONS mean deviations of their sum."""
        return 1.0 + DEVIATIONS * self.deviation / math.sqrt(max(calls, 1))

    def planned_seconds(self, pairs: int, calls: int = 1, waited: int | None = None) -> float | None:
        """What a plan counts those calls at, in a plan that waits for `waited` calls in all (default:
        these): their mean cost times the margin of the calls waited for."""
        mean = self.call_seconds(pairs, calls)
        return None if mean is None else mean * self.margin(calls if waited is None else waited)

    def planned_seconds_per_pair(self, waited: int = 1) -> float | None:
        """What a plan waiting for `waited` calls counts one more pair of a call at."""
        return None if self.seconds_per_pair is None else self.seconds_per_pair * self.margin(waited)

    def seconds_to_go(self, waited: int | None = None) -> float:
        """The planned work in flight (in a plan waiting for `waited` calls, default those in flight)
        less what the reranker has surely done already: the time it has been busy (the mean would count
        a slow call as done too soon and queue searches past their budget), less the planned work of
        the calls answered since it became busy."""
        waited = self.calls_in_flight if waited is None else waited
        in_flight = self.planned_seconds(self.pairs_in_flight, self.calls_in_flight, waited)
        if in_flight is None or self.calls_in_flight == 0:
            return 0.0
        if self._busy_since is None:
            return in_flight
        calls, pairs = self._answered_since_busy
        answered = self.planned_seconds(pairs, calls, waited) or 0.0
        done = self.clock() - self._busy_since - answered
        return in_flight - min(max(done, 0.0), in_flight)

    def affordable_pairs(self, budget_s: float) -> int | None:
        """How many new pairs one call can send now and still be answered within `budget_s`, after
        the work in flight still to be done (negative: the queue alone is over it); None while the
        cost is unknown."""
        waited = self.calls_in_flight + 1
        per_pair, call = self.planned_seconds_per_pair(waited), self.planned_seconds(0, 1, waited)
        if per_pair is None or call is None:
            return None
        return _floor((budget_s - self.seconds_to_go(waited) - call) / per_pair)

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
        full, per_pair, call = self.call_seconds(full_depth), self.planned_seconds_per_pair(), self.planned_seconds(0)
        if full is None or per_pair is None or call is None or self.seconds_per_pair is None:
            return None
        if (
            self.overlap <= COMPETING
            or full <= self.utilisation * self.mean_gap_s
            or (self.affordable_pairs(budget_s - call) or 0) >= full_depth + floor
        ):
            return full_depth
        fair = _floor((self.utilisation * self.mean_gap_s - self.seconds_per_call) / self.seconds_per_pair)
        half = _floor((budget_s / 2 - call) / per_pair)
        return max(floor, min(fair, half))

    @contextmanager
    def call(self, pairs: int) -> Iterator[None]:
        """Counts the call in flight while it runs, and records its cost when it was answered or timed
        out (a DependencyError that did not time out, or a cancellation, records nothing)."""
        ahead = self.calls_in_flight
        started = self.clock()
        if ahead == 0:
            self._busy_since, self._answered_since_busy = started, (0, 0)
        self.pairs_in_flight += pairs
        self.calls_in_flight += 1
        measured = False
        try:
            yield
            measured = True
        except DependencyError as error:
            measured = error.timed_out
            raise
        finally:
            self.pairs_in_flight -= pairs
            self.calls_in_flight -= 1
            calls, answered = self._answered_since_busy
            self._answered_since_busy = (calls + 1, answered + pairs)
            if self.calls_in_flight == 0:
                self._busy_since = None
            if measured and ahead == 0:
                self._record(pairs, self.clock() - started)

    def _record(self, pairs: int, seconds: float) -> None:
        predicted = self.call_seconds(pairs)
        if predicted is not None and predicted > 0:
            self.deviation += self.smoothing * (abs(seconds - predicted) / predicted - self.deviation)
        if self._sizes is None:
            self._sizes = CallSizes(pairs, seconds, pairs * pairs, pairs * seconds)
        else:
            self._sizes.add(self.smoothing, pairs, seconds)
        sizes = self._sizes
        spread = sizes.nn - sizes.n * sizes.n
        if spread > (DEPTH_SPREAD * sizes.n) ** 2:
            slope = (sizes.nt - sizes.n * sizes.t) / spread
            fixed = min(max(sizes.t - slope * sizes.n, 0.0), sizes.t)
            self.seconds_per_call += self.smoothing * (fixed - self.seconds_per_call)
        self.seconds_per_call = min(self.seconds_per_call, sizes.t / 2)
        self.seconds_per_pair = (sizes.t - self.seconds_per_call) / max(sizes.n, 1.0)


def _floor(value: float) -> int:
    """math.floor that a float's rounding error does not take below a whole number (0.24 - 0.1 over 1 ms)."""
    return math.floor(value + 1e-9)
