"""Chaos: steady searches and clicks through Envoy while one component is killed (SIGKILL) and
comes back by itself, supervisord restarting it, with no command; a few are stopped (SIGSTOP)
and resumed (SIGCONT) instead.

Every request gets a full answer, a degraded one that names what failed, or a clear error
(429/503/504 with a google.rpc.Status body; while Envoy itself is dead, a refused connection):
never silence past the client's deadline, never a bare 500. Other components may only time out
(or have their breaker opened by timeouts): the two cores are busy. The suite measures, per
component, the time from the fault until full answers return (a search the fault no longer
degrades and an accepted click, each after the last answer the fault spoiled) and checks that
every acknowledged click is applied to Redis exactly once (an unacknowledged one at most once),
except those the memory-only local broker loses when it dies, which it counts beside the stream
workers' consumer lag at the moment of the crash. The table it prints is in docs/performance.md.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from atelier.offline.catalog.hm_loader import HMDataset, iter_articles
from atelier.serving import redis_clients
from atelier.serving.feature_store import keys
from atelier.stack import readiness
from atelier.stack.launcher import RUNNING_STATES, Stack
from tests.integration.support.traffic import Answer, Traffic

KILLED = ("triton", "milvus", "redis", "broker", "features", "ranker", "search", "stream", "stream-retry", "envoy")
# SIGSTOP (a hung process, which supervisord does not see): cheap cases, resumed by the test.
STOPPED = ("redis", "features", "ranker")
CASES = [(component, "KILL") for component in KILLED] + [(component, "STOP") for component in STOPPED]
WARM_S = 1.0  # traffic before the fault
DOWN_S = 4.0  # how long a stopped component stays stopped
SETTLE_S = 3.0  # traffic after the component is ready again
# Envoy's route timeouts are 5 s (search, clicks): a client waiting longer than this saw a hang.
CLIENT_TIMEOUT_S = 8.0
# Issue 14's targets, from the kill (or CONT) to full answers: services, Redis, the broker and Envoy
# 5 s, Triton 20 s, Milvus 60 s. Asserted at three times the target: the suite runs on a busy
# 2-core CI machine; the figures measured are in docs/performance.md ("Chaos").
TARGET_S = {"triton": 20.0, "milvus": 60.0}
DEFAULT_TARGET_S = 5.0
BOUND_FACTOR = 3.0
# From the kill to the component running again and ready, at least (Milvus and Triton: their bound).
READY_BOUND_S = 60.0
# Clicks that failed to apply wait in the retry tiers (1 s, then 10 s) before they are applied.
CATCH_UP_S = 45.0
ERROR_STATUSES = {429, 503, 504}
# Search reaches Redis through the features service: with Redis down, features is what fails.
FRONTED_BY = {"redis": "features"}
# The reranker is a model in Triton, so it fails with Triton; but it also misses its 250 ms
# budget under load on its own, so it does not say whether Triton has recovered.
ALSO_FAILS = {"triton": "reranker"}
# The local broker keeps records in memory only (README): its death loses what was not consumed.
LOSES_UNCONSUMED = {("broker", "KILL")}
# How a client sees Envoy die: its connection refused or cut.
CONNECTION_ERRORS = ("Connection refused", "RemoteDisconnected", "Connection reset", "Broken pipe")


@dataclass(frozen=True)
class Outcome:
    ready_s: float  # from the fault to the component running again and ready
    search_s: float  # from the fault to full search answers
    click_s: float  # from the fault to accepted clicks
    acknowledged: int
    lost: int
    lag: int | None  # the stream workers' consumer lag just before the fault (broker kill)

    @property
    def full_s(self) -> float:
        return max(self.search_s, self.click_s)


OUTCOMES: dict[tuple[str, str], Outcome] = {}


@pytest.fixture(scope="module")
def articles(catalog_dataset: HMDataset, catalog: int) -> Iterator[str]:
    """Every catalogue article in turn, across all cases: none gets more than a click or two, so
    no article becomes popular enough to upset later tests (the popular-items ones)."""
    return itertools.cycle([article.article_id for article in iter_articles(catalog_dataset.articles)])


@pytest.fixture(scope="module", autouse=True)
def _fresh_search_afterwards(stack: Stack) -> Iterator[None]:
    """Restarts search after the module: its circuit breakers judge the last 50 calls, and this
    module's thousands of successful ones would take 25 failures, not 10, to open one in a later
    test (test_search_degradation)."""
    yield
    stack.supervisor.stop("search")
    stack.up()


@pytest.fixture(scope="module", autouse=True)
def _print_outcomes() -> Iterator[None]:
    started = time.monotonic()
    yield
    if OUTCOMES:
        print(
            f"\nchaos: {len(OUTCOMES)} cases in {time.monotonic() - started:.0f} s; "
            "seconds from the fault (from CONT for STOP)"
        )
        print("  component     signal  ready  full answers (search, click)  target  clicks ack/applied/lost  lag")
        for (component, signal), o in OUTCOMES.items():
            target = TARGET_S.get(component, DEFAULT_TARGET_S)
            lag = "-" if o.lag is None else str(o.lag)
            print(
                f"  {component:13} {signal:6} {o.ready_s:6.1f} {o.full_s:7.1f} ({o.search_s:5.1f}, {o.click_s:5.1f})"
                f"       {target:5.0f}   {o.acknowledged:5d}/{o.acknowledged - o.lost:5d}/{o.lost:<5d}     {lag}"
            )


def _healthy(stack: Stack) -> list[str]:
    """What is not running and ready; empty when the whole stack is."""
    return [f"{row['component']}: {row['state']} {row['ready']}" for row in stack.status() if row["ready"] != "ready"]


@pytest.fixture
def restore(stack: Stack) -> Iterator[None]:
    """Whatever a case did, the stack is whole again afterwards: by itself, or else (so that the
    next cases run on a whole stack) by `atelier up`, and the case fails."""
    yield
    for info in stack.supervisor.all_info():
        if info["statename"] in RUNNING_STATES:
            stack.supervisor.signal(info["name"], "CONT")
    deadline = time.monotonic() + 120
    while (problems := _healthy(stack)) and time.monotonic() < deadline:
        time.sleep(1)
    if problems:
        stack.up()
    assert not problems, f"the stack did not become whole again by itself: {problems}"


def _await_ready(stack: Stack, component: str, old_pid: int, since: float, bound_s: float) -> float:
    """Seconds from `since` until the component runs again (a new process after a kill) and is ready."""
    check = next(c for c in stack.components() if c.name == component).check
    deadline = since + bound_s
    while True:
        info = stack.supervisor.info(component)
        # STARTING: supervisord calls it RUNNING only once it has lived `startsecs`.
        if info["statename"] in ("STARTING", "RUNNING") and info["pid"] != old_pid:
            with contextlib.suppress(Exception):  # not ready yet
                check()
                return time.monotonic() - since
        assert time.monotonic() < deadline, f"{component} not running and ready within {bound_s:.0f} s: {info}"
        time.sleep(0.1)


def _stream_lag(stack: Stack) -> int:
    """Records both stream workers have yet to commit, over all their topics."""
    workers = {"stream": stack.endpoints.stream_web_port, "stream-retry": stack.endpoints.stream_retry_web_port}
    return sum(
        sum(readiness.stream_lag(f"http://{stack.endpoints.address(port)}").values()) for port in workers.values()
    )


def _load_driven(degradation: dict) -> bool:
    # Two loaded cores (a restarted component warming up, the traffic itself) make a dependency
    # miss its deadline now and then, and its breaker may open on those timeouts (the reranker's
    # 250 ms budget most often). An outright failure of another component must not happen.
    # A popular list kept from earlier (STALE_DATA_ALLOWED) is search's answer to a features service
    # that did not answer in time while it fell back from the faulted component. A rerank shallower
    # than full depth, or shed under its floor, is the reranker bending under that load.
    reason = degradation.get("reason", "")
    load_shaped = ("_TIMEOUT", "_CIRCUIT_OPEN", "_STALE_DATA_ALLOWED", "_RERANK_DEPTH_REDUCED", "_CAPACITY_REJECTED")
    return reason.endswith(load_shaped) or degradation.get("detail", "").startswith("timed out")


def _recovered(answer: Answer, faulted: set[str]) -> bool:
    """Answered, and not degraded by the fault: no degradation names it, any other is load-driven
    (on an idle machine: not degraded at all)."""
    return answer.status == 200 and all(
        d.get("component") not in faulted and _load_driven(d) for d in answer.degradations
    )


def _full(answer: Answer, faulted: set[str]) -> bool:
    """A search the fault no longer degrades, or an accepted click."""
    if answer.kind == "click":
        return answer.status == 200 and answer.click is not None and answer.body.get("eventId") == answer.click.event_id
    return _recovered(answer, faulted)


def _full_again(answers: list[Answer], since: float, faulted: set[str], kind: str) -> float | None:
    """Seconds from `since` until the first full answer of `kind` sent after the last one the
    fault spoiled (sent after `since`); None while there is none."""
    after = [a for a in answers if a.kind == kind and a.started >= since]
    last_bad = max((a.started for a in after if not _full(a, faulted)), default=since)
    done = [a.finished for a in after if a.started >= last_bad and _full(a, faulted)]
    return min(done) - since if done else None


def _await_full_answers(
    traffic: Traffic, since: float, ready_at: float, faulted: set[str], bound_s: float
) -> tuple[float, float]:
    """(search, click): seconds from `since` to full answers, judged once traffic has run SETTLE_S
    past the component's return (a late spoiled answer moves the figure on)."""
    deadline = max(since + bound_s, ready_at + SETTLE_S + 5)
    while True:
        settled = time.monotonic() >= ready_at + SETTLE_S
        answers = traffic.snapshot()
        search_s, click_s = (_full_again(answers, since, faulted, kind) for kind in ("search", "click"))
        if settled and search_s is not None and click_s is not None:
            return search_s, click_s
        assert time.monotonic() < deadline, (
            f"no full answers within {bound_s:.0f} s: search after {search_s} s, accepted click after {click_s} s"
        )
        time.sleep(0.2)


def _problem(answer: Answer, may_fail: set[str]) -> str | None:
    """Why this answer is not acceptable, or None."""
    if answer.status is None and "envoy" in may_fail and any(e in answer.error for e in CONNECTION_ERRORS):
        return None  # Envoy itself is down: its clients' connections are refused or cut
    if answer.status is None or answer.status < 0:
        return answer.error or "no answer"
    if answer.status in ERROR_STATUSES:
        if not isinstance(answer.body.get("code"), int) or not answer.body.get("message"):
            return f"{answer.status} without a google.rpc.Status body: {answer.body}"
        return None
    if answer.status != 200:
        return f"unexpected status {answer.status}: {answer.body}"
    if answer.kind == "click":
        acknowledged = answer.click is not None and answer.body.get("eventId") == answer.click.event_id
        return None if acknowledged else f"click answered 200 without its event id: {answer.body}"
    if not answer.body.get("results") and not answer.degradations:
        return "no results and no degradation"
    for degradation in answer.degradations:
        if not (degradation.get("reason", "").startswith("DEGRADATION_REASON_") and degradation.get("detail")):
            return f"ill-formed degradation {degradation}"
        if degradation.get("component") not in may_fail and not _load_driven(degradation):
            return f"degradation names {degradation.get('component')}: {degradation}"
    return None


def _applied(store: redis_clients.SyncRedis, users: list[str]) -> dict[str, collections.Counter[str]]:
    """user -> how many times each article is in the user's recent clicks."""
    pipe = store.pipeline(transaction=False)
    for user in users:
        pipe.lrange(keys.user_recent(user), 0, -1)
    lists = pipe.execute()
    return {
        user: collections.Counter(keys.parse_list_entry(entry.decode())[0] for entry in entries)
        for user, entries in zip(users, lists, strict=True)
    }


@dataclass(frozen=True)
class Clicks:
    acknowledged: int
    lost: int  # acknowledged, never applied: only where the fault is allowed to lose them
    waited_s: float  # for the stream to apply the last of them, after the traffic stopped


def _check_clicks(stack: Stack, answers: list[Answer], may_lose_before: float) -> Clicks:
    """Every acknowledged click (but those acknowledged before `may_lose_before`) is applied once;
    no click is applied twice, or without having been sent."""
    sent = collections.defaultdict(set)
    for answer in answers:
        if answer.click:
            sent[answer.click.user].add(answer.click.item)
    acknowledged = [a.click for a in answers if a.click and a.status == 200]
    must_apply = [a.click for a in answers if a.click and a.status == 200 and a.started >= may_lose_before]
    store = redis_clients.sync_client(stack.endpoints)
    started = time.monotonic()
    try:
        while True:
            applied = _applied(store, sorted(sent))
            missing = [c for c in must_apply if not applied[c.user][c.item]]
            if not missing or time.monotonic() - started > CATCH_UP_S:
                break
            time.sleep(0.5)
        waited = time.monotonic() - started
        time.sleep(0.5)  # a second apply would show up now
        applied = _applied(store, sorted(sent))
    finally:
        store.close()
    assert not missing, f"{len(missing)} acknowledged clicks not applied after {CATCH_UP_S:.0f} s: {missing[:3]}"
    twice = {user: [i for i, n in counts.items() if n > 1] for user, counts in applied.items()}
    assert not any(twice.values()), f"clicks applied more than once: {twice}"
    strangers = {user: set(counts) - sent[user] for user, counts in applied.items()}
    assert not any(strangers.values()), f"clicks applied that were never sent: {strangers}"
    lost = sum(1 for c in acknowledged if not applied[c.user][c.item])
    return Clicks(len(acknowledged), lost, waited)


def _describe(component: str, signal: str, answers: list[Answer], fault_at: float) -> str:
    outcomes = collections.Counter(
        f"{a.kind} {a.status}{' degraded' if a.degradations else ''}" for a in answers if a.started >= fault_at
    )
    degradations = collections.Counter(
        f"{d['component']} {d['reason'].removeprefix('DEGRADATION_REASON_')}" for a in answers for d in a.degradations
    )
    errors = {f"{a.kind} {a.status}": a.body.get("message", "")[:120] for a in answers if a.status != 200}
    return (
        f"{component} {signal}: {len(answers)} requests, slowest {max(a.seconds for a in answers):.1f} s; "
        f"from the fault on: {dict(outcomes)}; degradations: {dict(degradations)}; errors, e.g.: {errors}"
    )


@pytest.mark.parametrize(("component", "signal"), CASES, ids=[f"{c}-{s}" for c, s in CASES])
def test_a_component_killed_under_traffic_comes_back_by_itself(
    stack: Stack, articles: Iterator[str], restore: None, component: str, signal: str
) -> None:
    bound_s = BOUND_FACTOR * TARGET_S.get(component, DEFAULT_TARGET_S)
    faulted = {component, FRONTED_BY.get(component, component)}
    may_fail = faulted | {ALSO_FAILS.get(component, component)}
    old_pid = stack.supervisor.info(component)["pid"] if signal == "KILL" else -1
    with Traffic(stack, articles, timeout_s=CLIENT_TIMEOUT_S) as traffic:
        time.sleep(WARM_S)
        lag = _stream_lag(stack) if (component, signal) in LOSES_UNCONSUMED else None
        fault_at = time.monotonic()
        stack.supervisor.signal(component, signal)
        try:
            if signal == "STOP":
                time.sleep(DOWN_S)
        finally:
            if signal == "STOP":
                stack.supervisor.signal(component, "CONT")
        # From the kill (supervision alone brings it back), or from CONT.
        since = fault_at if signal == "KILL" else time.monotonic()
        try:
            # A stream worker's return does not show in answers; it is back in its group after the
            # broker's session timeout (6 s) and a rebalance.
            ready_s = _await_ready(stack, component, old_pid, since, max(bound_s, READY_BOUND_S))
            search_s, click_s = _await_full_answers(traffic, since, since + ready_s, faulted, bound_s)
        finally:
            traffic.stop()
            print("\n" + _describe(component, signal, traffic.answers, fault_at))
    answers = traffic.answers
    problems = [(a.kind, round(a.started - fault_at, 1), p) for a in answers if (p := _problem(a, may_fail))]
    assert not problems, f"{len(problems)} unacceptable answers (kind, s after the fault, why): {problems[:5]}"
    may_lose_before = since + ready_s if (component, signal) in LOSES_UNCONSUMED else 0.0
    clicks = _check_clicks(stack, answers, may_lose_before)
    outcome = Outcome(ready_s, search_s, click_s, clicks.acknowledged, clicks.lost, lag)
    OUTCOMES[(component, signal)] = outcome
    print(
        f"  back: ready after {ready_s:.1f} s, full answers after {outcome.full_s:.1f} s (search {search_s:.1f} s, "
        f"click {click_s:.1f} s); {clicks.acknowledged} clicks acknowledged, {clicks.lost} lost (lag at the fault: "
        f"{lag}), the last applied {clicks.waited_s:.1f} s after the traffic stopped"
    )
    assert outcome.full_s <= bound_s, f"full answers only after {outcome.full_s:.1f} s (bound {bound_s:.0f} s)"
