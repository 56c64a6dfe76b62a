"""Steady REST traffic through Envoy for failure tests: searches and clicks from a few threads,
every answer recorded with its timing."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from atelier.stack.launcher import Stack
from tests.integration.support import edge

QUERY_WORDS = ("black", "wool", "slim", "cotton", "denim", "striped", "dress", "coat", "jeans", "top", "skirt", "knit")


@dataclass(frozen=True)
class Click:
    user: str
    item: str
    event_id: str


@dataclass(frozen=True)
class Answer:
    kind: str  # "search" or "click"
    started: float  # time.monotonic()
    seconds: float
    status: int | None  # None: no HTTP answer (timeout, connection or protocol error)
    body: dict = field(default_factory=dict)
    error: str = ""
    click: Click | None = None

    @property
    def finished(self) -> float:
        return self.started + self.seconds

    @property
    def degradations(self) -> list[dict]:
        return self.body.get("degradations", []) if self.status == 200 else []


class Traffic:
    """Searchers send unique queries (never cached: Triton and Milvus answer each) as one of the
    clicking users (so the features service and the ranker take part), pausing `pause_s` between
    requests; clickers click at half that rate, with an event id of ours, `clicks_per_user` clicks
    per user, on the next articles of `articles` (which must not repeat one within that many)."""

    def __init__(
        self,
        stack: Stack,
        articles: Iterator[str],
        searchers: int = 3,
        clickers: int = 1,
        pause_s: float = 0.2,
        timeout_s: float = 8.0,
        clicks_per_user: int = 10,
    ) -> None:
        self._stack = stack
        self._articles = articles
        self._searchers = searchers
        self._clickers = clickers
        self._pause_s = pause_s
        self._timeout_s = timeout_s
        self._clicks_per_user = clicks_per_user
        self._run = uuid.uuid4().hex[:8]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.answers: list[Answer] = []

    def __enter__(self) -> Traffic:
        targets = [self._search_loop] * self._searchers + [self._click_loop] * self._clickers
        self._threads = [
            threading.Thread(target=target, args=(n,), daemon=True, name=f"traffic-{n}")
            for n, target in enumerate(targets)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self._timeout_s + 5)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def _user(self, clicker: int, n: int) -> str:
        return f"chaos-{self._run}-{clicker}-{n // self._clicks_per_user}"

    def _record(self, kind: str, send: Callable[[], tuple[int, dict]], click: Click | None = None) -> None:
        started = time.monotonic()
        status, body, error = None, {}, ""
        try:
            status, body = send()
        except ValueError as failure:  # the body was not JSON
            status, error = -1, f"unparseable body: {failure}"
        except Exception as failure:  # noqa: BLE001 (timeouts, resets, protocol errors: all "no answer")
            error = f"{type(failure).__name__}: {failure}"
        answer = Answer(kind, started, time.monotonic() - started, status, body, error, click)
        with self._lock:
            self.answers.append(answer)

    def _search_loop(self, n: int) -> None:
        for i in itertools.count():
            if self._stop.is_set():
                return
            words = [QUERY_WORDS[(i + j * n + j) % len(QUERY_WORDS)] for j in range(3)]
            query = f"{' '.join(words)} {self._run}{n}x{i}"
            user = self._user(0, i)
            self._record(
                "search", lambda q=query, u=user: edge.search(self._stack, self._timeout_s, query=q, k=5, userId=u)
            )
            self._stop.wait(self._pause_s)

    def _click_loop(self, n: int) -> None:
        clicker = n - self._searchers
        for i in itertools.count():
            if self._stop.is_set():
                return
            with self._lock:
                item = next(self._articles)
            click = Click(self._user(clicker, i), item, uuid.uuid4().hex)
            self._record(
                "click",
                lambda c=click: edge.click(self._stack, c.user, c.item, self._timeout_s, eventId=c.event_id),
                click,
            )
            self._stop.wait(self._pause_s * 2)
