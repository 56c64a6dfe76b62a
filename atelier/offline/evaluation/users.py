"""Simulated shoppers: latent tastes, click histories sent through the real click path, and
held-out intents that show whether personalisation serves those tastes.

Each user prefers one product type and one colour family. Their history is a few clicks,
mostly on articles of that type (half of them in that colour), sent with RecordClick through
the edge and waited for until the feature store shows them. Their held-out intent is a broad
query, "<colour> <product group>" ("black lower body garment"), which many types answer
literally. Ground truth: the articles their held-out clicks come from, the preferred type in
that colour (grade 2), with other types of the group in that colour as literal matches
(grade 1); articles already clicked are left out, so re-showing history earns nothing.

Users without history search the same intents with a fresh user id: personalisation must
leave their answer exactly as the anonymous one.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from atelier.offline.catalog.schema import Article
from atelier.offline.evaluation.client import ALL_CANDIDATES, StackClient, undegraded
from atelier.offline.evaluation.queries import colour_family, group_phrase
from atelier.offline.evaluation.stages import ANN, PERSONALISED, RERANK, StageTable, score

HISTORY_OF_TYPE = 6  # clicks on the preferred type, half of them in the preferred colour
HISTORY_RANDOM = 2
MIN_TYPE_ARTICLES = 40
MIN_INTENT_ARTICLES = 10
K = 50


@dataclass(frozen=True)
class SimulatedUser:
    user_id: str
    product_type: str
    family: str
    history: tuple[str, ...]
    intent: str  # the held-out query
    grades: dict[str, int]


def _eligible_tastes(articles: Sequence[Article]) -> list[tuple[str, str]]:
    """(type, colour family) pairs with enough articles, of types whose group has other types too."""
    group_of: dict[str, str] = {}
    types_in_group: dict[str, set[str]] = {}
    for article in articles:
        group_of.setdefault(article.product_type, article.product_group)
        types_in_group.setdefault(article.product_group, set()).add(article.product_type)
    type_sizes = Counter(a.product_type for a in articles)
    pair_sizes = Counter((a.product_type, colour_family(a.colour)) for a in articles)
    return sorted(
        (product_type, family)
        for (product_type, family), n in pair_sizes.items()
        if n >= MIN_INTENT_ARTICLES + HISTORY_OF_TYPE
        and type_sizes[product_type] >= MIN_TYPE_ARTICLES
        and len(types_in_group[group_of[product_type]]) > 1
    )


def simulate_users(articles: Sequence[Article], n: int, seed: int, id_prefix: str) -> list[SimulatedUser]:
    rng = random.Random(seed)
    tastes = _eligible_tastes(articles)
    by_type: dict[str, list[Article]] = {}
    for article in articles:
        by_type.setdefault(article.product_type, []).append(article)
    users = []
    for i in range(n):
        product_type, family = rng.choice(tastes)
        of_type = by_type[product_type]
        in_colour = [a for a in of_type if colour_family(a.colour) == family]
        other_colour = [a for a in of_type if colour_family(a.colour) != family] or in_colour
        history = rng.sample(in_colour, HISTORY_OF_TYPE // 2) + rng.sample(
            other_colour, min(len(other_colour), HISTORY_OF_TYPE - HISTORY_OF_TYPE // 2)
        )
        history += rng.sample(articles, HISTORY_RANDOM)
        clicked = {a.article_id for a in history}
        group = of_type[0].product_group
        grades = {
            a.article_id: 2 if a.product_type == product_type else 1
            for a in articles
            if a.product_group == group and colour_family(a.colour) == family and a.article_id not in clicked
        }
        users.append(
            SimulatedUser(
                user_id=f"{id_prefix}-{i}",
                product_type=product_type,
                family=family,
                history=tuple(dict.fromkeys(a.article_id for a in history)),
                intent=f"{family} {group_phrase(group)}",
                grades=grades,
            )
        )
    return users


def send_histories(client: StackClient, users: Sequence[SimulatedUser]) -> None:
    """Every user's clicks through RecordClick, then waits until the feature store has them all."""
    for user in users:
        for position, article_id in enumerate(user.history, start=1):
            client.click(user.user_id, article_id, position, query=user.intent)
    for user in users:
        client.wait_for_clicks(user.user_id, len(user.history))


def evaluate_users(
    client: StackClient, users: Sequence[SimulatedUser], per_user: list[dict[str, float | str]] | None = None
) -> StageTable:
    """Stage metrics of the users' held-out intents; their histories must already be applied. `per_user`, when
    given, gets each user's NDCG@10 anonymous (rerank) and personalised."""
    table = StageTable()
    for user in users:
        anonymous = undegraded(partial(client.search, user.intent, ALL_CANDIDATES)).top(K)
        personal = undegraded(partial(client.search, user.intent, ALL_CANDIDATES, user_id=user.user_id)).top(K)
        table.add(ANN, score(anonymous.retrieval, user.grades, 2))
        reranked, personalised = score(anonymous.final, user.grades, 2), score(personal.final, user.grades, 2)
        table.add(RERANK, reranked)
        table.add(PERSONALISED, personalised)
        if per_user is not None:
            per_user.append({"user": user.user_id, RERANK: reranked["ndcg@10"], PERSONALISED: personalised["ndcg@10"]})
    return table


def unchanged_without_history(
    client: StackClient, users: Sequence[SimulatedUser], id_prefix: str, attempts: int = 3
) -> tuple[int, int]:
    """(answers identical to the anonymous one, answers compared) for fresh ids without clicks.

    Identical: no behaviour score anywhere and the same articles with the same scores in the
    same order (articles of equal score may come back in either order from retrieval). A pair in
    which either answer was degraded (a rerank over its budget answers in retrieval order) says
    nothing about personalisation, so it is asked again, up to `attempts` times.
    """
    same = 0
    for i, user in enumerate(users):
        for _ in range(attempts):
            anonymous = client.search(user.intent, K)
            cold = client.search(user.intent, K, user_id=f"{id_prefix}-cold-{i}")
            if not (anonymous.degradations or cold.degradations):
                break
        same += not cold.personalised and cold.canonical() == anonymous.canonical()
    return same, len(users)
