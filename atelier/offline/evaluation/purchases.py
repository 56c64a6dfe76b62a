"""Purchase queries: each sampled customer's purchases in the last week of transactions as
ground truth (the H&M files' real behaviour; the synthetic catalogue's simulated one).

For a customer, one last-week purchase is described as a shopper would ask for it (an
attribute query from its noun and some of its attributes); every purchase of that customer
in the week that answers the query counts as relevant (grade 1). Unlike the attribute
queries, most matching articles are not relevant here: only what this customer bought is.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta

from atelier.offline.catalog.schema import Article, Transaction
from atelier.offline.evaluation.queries import AttributeQuery, query_from

WEEK = timedelta(days=7)


def last_week_purchases(transactions: Iterable[Transaction]) -> dict[str, set[str]]:
    """customer_id -> article ids bought in the 7 days ending on the last transaction day.

    One streaming pass that keeps only rows within a week of the latest day seen so far, so
    H&M's 31 million rows never sit in memory at once.
    """
    latest = None
    recent: list[Transaction] = []
    for row in transactions:
        if latest is None or row.day > latest:
            latest = row.day
            recent = [kept for kept in recent if kept.day > latest - WEEK]
        if row.day > latest - WEEK:
            recent.append(row)
    bought: dict[str, set[str]] = {}
    for row in recent:
        bought.setdefault(row.customer_id, set()).add(row.article_id)
    return bought


def purchase_queries(
    articles: Mapping[str, Article], purchases: Mapping[str, set[str]], n: int, seed: int
) -> Iterator[tuple[AttributeQuery, dict[str, int]]]:
    rng = random.Random(seed)
    customers = sorted(c for c, items in purchases.items() if any(i in articles for i in items))
    for customer in rng.sample(customers, min(n, len(customers))):
        bought = sorted(i for i in purchases[customer] if i in articles)
        query = query_from(articles[rng.choice(bought)], rng)
        yield query, {i: 1 for i in bought if query.grade(articles[i]) > 0}
