"""A deterministic synthetic H&M catalogue: articles.csv and transactions_train.csv in H&M's exact schema.

For development and tests without the Kaggle files. Everything is drawn from seeded
`random.Random` streams, so the same seed gives the same bytes, and generation is sequential,
so a smaller `n` gives a prefix of a larger one.

Articles: products (a 7-digit product_code) are drawn with H&M-like frequencies (many trousers
and dresses, few coats), each in 1 to 12 colour variants (article_id = product_code + a 3-digit
variant), named and described from the vocabulary in `atelier.offline.catalog.vocabulary`.

Transactions: Zipf-like article popularity, customers with latent preferences (an audience,
favourite index group/product type pairs and colours), baskets of a few items on one day and
channel, a weekly rhythm, and a set of trending articles that changes every week.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from itertools import accumulate
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from atelier.offline.catalog.hm_loader import HMDataset
from atelier.offline.catalog.schema import (
    ARTICLE_COLUMNS,
    ARTICLES_FILE,
    TRANSACTION_COLUMNS,
    TRANSACTIONS_FILE,
    Article,
)
from atelier.offline.catalog.vocabulary import (
    CHILDREN,
    COLOUR_WORDS,
    COLOURS,
    COLOURS_BY_NAME,
    DIVIDED,
    GARMENT_GROUPS,
    GRAPHICAL_APPEARANCES,
    GRAPHICS,
    INDEX_GROUPS,
    INDEXES,
    LADIESWEAR,
    MENSWEAR,
    MODEL_NAMES,
    PALETTES,
    PRICE_POINTS,
    PRICE_SCALE,
    PRODUCT_GROUPS,
    PRODUCT_TYPES,
    PRODUCT_TYPES_BY_NAME,
    SPORT,
    STYLE_TERMS,
    Colour,
    Modifier,
    ProductType,
    Style,
    department,
    section,
)

__all__ = [
    "COLOURS",
    "COLOUR_WORDS",
    "DEFAULT_DAYS",
    "DEFAULT_END_DAY",
    "DEFAULT_TRANSACTIONS",
    "GARMENT_GROUPS",
    "INDEX_GROUPS",
    "PRODUCT_GROUPS",
    "PRODUCT_TYPES",
    "STYLE_TERMS",
    "generate_articles",
    "generate_transactions",
    "write_synthetic_catalog",
]

DEFAULT_END_DAY = date(2020, 9, 22)  # the last day of H&M's transactions_train.csv
DEFAULT_DAYS = 91
DEFAULT_TRANSACTIONS = 1_000_000
H_AND_M_ARTICLES = 105_542

FIRST_PRODUCT_CODE = 108_775
_LAST_PRODUCT_CODE = 9_999_999
_DENSE_FROM = 9_000_000  # past this, product codes advance by 1 so the 7 digits last longer
_DESCRIPTION_MISSING = 0.004  # H&M lacks detail_desc for about 0.4 % of articles
_COLOUR_IN_DESCRIPTION = 0.3
_EXTRA_SENTENCE = 0.5
_MODEL_NAMED = 0.3  # share of Ladieswear and Divided products named like "Tilda Wrap Dress"
_VARIANT_COUNTS = ((1, 45.0), (2, 22.0), (3, 13.0), (4, 8.0), (5, 5.0), (6, 3.0), (7, 2.0), (8, 1.0), (10, 0.6),
                   (12, 0.4))  # fmt: skip

# Transactions
_POPULARITY_EXPONENT = 0.8  # weight of the article at popularity rank r: (r + 10) ** -0.8
_PREFERRED = 0.6  # share of picks from a customer's favourite categories...
_PREFERRED_COLOUR = 0.5  # ...of which this share in a favourite colour
_TRENDING = 0.1  # share of picks from the week's trending articles; the rest follow global popularity
_TRENDING_SHARE = 0.01
_ON_SALE = 0.12
_WEEKDAY_VOLUME = (0.9, 0.9, 0.95, 1.0, 1.15, 1.2, 1.0)  # Monday..Sunday
_AUDIENCES = (
    ({LADIESWEAR: 0.6, DIVIDED: 0.3, SPORT: 0.1}, 0.55),
    ({MENSWEAR: 0.85, SPORT: 0.15}, 0.25),
    ({CHILDREN: 0.7, LADIESWEAR: 0.3}, 0.2),
)

T = TypeVar("T")


class _Weighted(Generic[T]):
    __slots__ = ("cumulative", "items", "total")

    def __init__(self, pairs: Iterable[tuple[T, float]]) -> None:
        pairs = [(item, weight) for item, weight in pairs if weight > 0]
        if not pairs:
            raise ValueError("nothing to choose from")
        self.items = [item for item, _ in pairs]
        self.cumulative = list(accumulate(weight for _, weight in pairs))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> T:
        index = bisect_right(self.cumulative, rng.random() * self.total)
        return self.items[min(index, len(self.items) - 1)]


@dataclass(frozen=True)
class _TypePlan:
    product_type: ProductType
    index_groups: _Weighted[str]
    styles: Mapping[str, _Weighted[Style]]


@dataclass(frozen=True)
class _Plan:
    types: _Weighted[_TypePlan]
    palettes: Mapping[str, _Weighted[Colour]]
    graphics: Mapping[str, _Weighted[str]]
    variant_counts: _Weighted[int]


@cache
def _plan() -> _Plan:
    """The vocabulary as ready-made weighted choices; checks that every index group of a type has a style."""
    types = []
    for product_type in PRODUCT_TYPES:
        styles = {}
        for index_group in product_type.index_groups:
            usable = [
                (style, style.weight)
                for style in product_type.styles
                if index_group in (style.index_groups or set(product_type.index_groups) - {SPORT})
            ]
            if not usable:
                raise ValueError(f"{product_type.name}: no style for {index_group}")
            styles[index_group] = _Weighted(usable)
        plan = _TypePlan(product_type, _Weighted(product_type.index_groups.items()), styles)
        types.append((plan, product_type.weight))
    return _Plan(
        types=_Weighted(types),
        palettes={
            name: _Weighted((COLOURS_BY_NAME[colour], weight) for colour, weight in palette)
            for name, palette in PALETTES.items()
        },
        graphics={name: _Weighted(weights) for name, weights in GRAPHICS.items()},
        variant_counts=_Weighted(_VARIANT_COUNTS),
    )


def generate_articles(n: int, seed: int = 0) -> Iterator[dict[str, str]]:
    """`n` articles.csv rows (column -> text, in H&M's column order), sorted by article_id."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    plan = _plan()
    rng = random.Random(f"atelier-articles:{seed}")
    product_code = FIRST_PRODUCT_CODE
    emitted = 0
    while emitted < n:
        if product_code > _LAST_PRODUCT_CODE:
            raise ValueError(f"the 7-digit product codes ran out after {emitted} articles")
        for row in _product_rows(rng, plan, product_code):
            yield row
            emitted += 1
            if emitted == n:
                return
        product_code += 1 if product_code >= _DENSE_FROM else rng.randint(1, 35)


def _product_rows(rng: random.Random, plan: _Plan, product_code: int) -> list[dict[str, str]]:
    type_plan = plan.types.pick(rng)
    product_type = type_plan.product_type
    index_group = type_plan.index_groups.pick(rng)
    style = type_plan.styles[index_group].pick(rng)
    modifier = rng.choice(style.modifiers)
    index_code = _index_code(rng, index_group, product_type)
    garment_group = _garment_group(rng, style.garment_group, index_code)
    department_no, department_name = department(index_code, garment_group)
    section_no, section_name = section(index_code, garment_group)
    index_name, _ = INDEXES[index_code]
    name = f"{modifier.name} {style.noun}" if modifier.name else style.noun
    if index_group in (LADIESWEAR, DIVIDED) and rng.random() < _MODEL_NAMED:
        name = f"{rng.choice(MODEL_NAMES)} {name}"
    description = _Description.draw(rng, style, modifier)

    code = f"{product_code:07d}"
    shared = {
        "product_code": code,
        "prod_name": name,
        "product_type_no": str(product_type.number),
        "product_type_name": product_type.name,
        "product_group_name": product_type.group,
    }
    placement = {
        "department_no": str(department_no),
        "department_name": department_name,
        "index_code": index_code,
        "index_name": index_name,
        "index_group_no": str(INDEX_GROUPS[index_group]),
        "index_group_name": index_group,
        "section_no": str(section_no),
        "section_name": section_name,
        "garment_group_no": str(GARMENT_GROUPS[garment_group]),
        "garment_group_name": garment_group,
    }
    palette = plan.palettes[style.palette]
    graphics = plan.graphics[style.graphics]
    rows = []
    variant = rng.randint(1, 5)
    colours: list[Colour] = []
    for _ in range(plan.variant_counts.pick(rng)):
        colour = _new_colour(rng, palette, colours)
        colours.append(colour)
        graphic = graphics.pick(rng)
        rows.append(
            {
                "article_id": f"{code}{variant:03d}",
                **shared,
                "graphical_appearance_no": str(GRAPHICAL_APPEARANCES[graphic]),
                "graphical_appearance_name": graphic,
                "colour_group_code": str(colour.code),
                "colour_group_name": colour.name,
                "perceived_colour_value_id": str(colour.value_id),
                "perceived_colour_value_name": colour.value_name,
                "perceived_colour_master_id": str(colour.master_id),
                "perceived_colour_master_name": colour.master,
                **placement,
                "detail_desc": description.text(colour),
            }
        )
        variant += rng.randint(1, 12)
    return rows


def _new_colour(rng: random.Random, palette: _Weighted[Colour], taken: list[Colour]) -> Colour:
    """A colour the product has not got yet, as a rule; a repeat now and then, as H&M has (a print on black)."""
    colour = palette.pick(rng)
    for _ in range(8):
        if colour not in taken:
            break
        colour = palette.pick(rng)
    return colour


def _index_code(rng: random.Random, index_group: str, product_type: ProductType) -> str:
    group = product_type.group
    if index_group == LADIESWEAR:
        if group in ("Underwear", "Socks & Tights", "Nightwear", "Swimwear"):
            return "B"
        return "C" if group in ("Accessories", "Shoes") else "A"
    if index_group == CHILDREN:
        if group in ("Accessories", "Shoes", "Swimwear"):
            return "J"
        if product_type.name == "Garment Set":
            return rng.choice("GH")
        return rng.choices("GHI", weights=(0.35, 0.35, 0.3))[0]
    return {DIVIDED: "D", MENSWEAR: "F", SPORT: "S"}[index_group]


def _garment_group(rng: random.Random, garment_group: str, index_code: str) -> str:
    if index_code in "GHIJ" and garment_group in ("Dresses Ladies", "Skirts"):
        return "Dresses/Skirts girls"
    baby_mix = ("Jersey Basic", "Jersey Fancy", "Knitwear", "Trousers")
    if index_code == "G" and garment_group in baby_mix and rng.random() < 0.6:
        return "Woven/Jersey/Knitted mix Baby"
    return garment_group


@dataclass(frozen=True)
class _Description:
    """One product's detail_desc; the colour of the variant goes in when `colour_in_text`."""

    head: str  # "Slim-fit jeans in "
    material: str
    tail: str  # " with a regular waist, zip fly and button, and five pockets."
    colour_in_text: bool
    missing: bool

    @classmethod
    def draw(cls, rng: random.Random, style: Style, modifier: Modifier) -> _Description:
        opening = style.description_noun
        # "Skirt in satin", not "Satin skirt in satin".
        if modifier.adjective and not (modifier.material and modifier.adjective in modifier.material):
            opening = f"{modifier.adjective} {opening}"
        material = modifier.material or rng.choice(style.materials)
        features = [rng.choice(options) for options in style.feature_slots]
        keep = rng.randint(min(2, len(features)), len(features))
        tail = f" with {_join(features[:keep])}." if keep else "."
        if style.extras and rng.random() < _EXTRA_SENTENCE:
            tail += " " + rng.choice(style.extras)
        return cls(
            head=opening[:1].upper() + opening[1:] + " in ",
            material=material,
            tail=tail,
            colour_in_text=rng.random() < _COLOUR_IN_DESCRIPTION,
            missing=rng.random() < _DESCRIPTION_MISSING,
        )

    def text(self, colour: Colour) -> str:
        if self.missing:
            return ""
        if self.colour_in_text:
            return f"{self.head}{colour.name.lower()} {self.material}{self.tail}"
        return f"{self.head}{self.material}{self.tail}"


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    # The serial comma keeps "zip fly and button, and five pockets" readable.
    return ", ".join(parts[:-1]) + ", and " + parts[-1]


class _Item(NamedTuple):
    article_id: str
    product_type: str
    index_group: str
    colour: str


@dataclass(frozen=True)
class _Customer:
    customer_id: str
    online: float  # chance a basket is bought online (sales channel 2)
    categories: tuple[tuple[str, str], ...]  # favourite (index group, product type) pairs
    colours: tuple[str, ...]


def generate_transactions(
    articles: Iterable[Mapping[str, str] | Article],
    n: int,
    seed: int = 0,
    end_day: date = DEFAULT_END_DAY,
    days: int = DEFAULT_DAYS,
    n_customers: int | None = None,
) -> Iterator[dict[str, str]]:
    """`n` transactions_train.csv rows (column -> text) over the `days` days ending `end_day`, by day.

    `articles` are articles.csv rows (as from generate_articles) or Article records.
    `n_customers` defaults to one customer per 20 transactions.
    """
    items = [_item(article) for article in articles]
    return _transactions(items, n, seed, end_day, days, n_customers)


def _item(article: Mapping[str, str] | Article) -> _Item:
    if isinstance(article, Article):
        return _Item(article.article_id, article.product_type, article.index_group, article.colour)
    return _Item(
        article["article_id"], article["product_type_name"], article["index_group_name"], article["colour_group_name"]
    )


def _transactions(
    items: Sequence[_Item], n: int, seed: int, end_day: date, days: int, n_customers: int | None
) -> Iterator[dict[str, str]]:
    if n < 0 or days < 1:
        raise ValueError(f"need n >= 0 and days >= 1, got n={n}, days={days}")
    if n == 0:
        return
    if not items:
        raise ValueError("transactions need at least one article")
    rng = random.Random(f"atelier-transactions:{seed}")
    ranks = list(range(len(items)))
    rng.shuffle(ranks)
    weights = [(rank + 10) ** -_POPULARITY_EXPONENT for rank in ranks]
    popular = _Weighted(zip(range(len(items)), weights, strict=True))
    categories = _group(items, weights, lambda item: (item.index_group, item.product_type))
    coloured = _group(items, weights, lambda item: (item.index_group, item.product_type, item.colour))
    prices = _prices(rng, items)
    customers = _customers(rng, n_customers or max(1, n // 20), categories, coloured)
    activity = _Weighted((customer, min(rng.paretovariate(1.2), 200.0)) for customer in customers)
    first_day = end_day - timedelta(days=days - 1)
    trending: dict[int, list[int]] = {}

    def pick(customer: _Customer, day_number: int) -> int:
        draw = rng.random()
        if draw < _PREFERRED:
            index_group, product_type = rng.choice(customer.categories)
            if rng.random() < _PREFERRED_COLOUR:
                in_colour = coloured.get((index_group, product_type, rng.choice(customer.colours)))
                if in_colour is not None:
                    return in_colour.pick(rng)
            return categories[index_group, product_type].pick(rng)
        if draw < _PREFERRED + _TRENDING:
            week = day_number // 7
            if week not in trending:
                trending[week] = _trending(seed, week, len(items))
            return rng.choice(trending[week])
        return popular.pick(rng)

    for day_number, count in enumerate(_daily_counts(n, first_day, days)):
        t_dat = (first_day + timedelta(days=day_number)).isoformat()
        while count > 0:
            customer = activity.pick(rng)
            channel = "2" if rng.random() < customer.online else "1"
            basket = min(count, 1 + int(rng.expovariate(0.75)))
            count -= basket
            for _ in range(basket):
                index = pick(customer, day_number)
                price = prices[index]
                if rng.random() < _ON_SALE:
                    price *= rng.choice((0.5, 0.6, 0.7))
                yield {
                    "t_dat": t_dat,
                    "customer_id": customer.customer_id,
                    "article_id": items[index].article_id,
                    "price": f"{price:.15g}",
                    "sales_channel_id": channel,
                }


def _group(
    items: Sequence[_Item], weights: Sequence[float], key: Callable[[_Item], tuple[str, ...]]
) -> dict[tuple[str, ...], _Weighted[int]]:
    members: dict[tuple[str, ...], list[tuple[int, float]]] = {}
    for index, item in enumerate(items):
        members.setdefault(key(item), []).append((index, weights[index]))
    return {group: _Weighted(pairs) for group, pairs in members.items()}


def _prices(rng: random.Random, items: Sequence[_Item]) -> list[float]:
    """H&M-scaled shelf price per article; colour variants of a product share theirs."""
    by_product: dict[str, float] = {}
    prices = []
    for item in items:
        price = by_product.get(item.article_id[:7])
        if price is None:
            product_type = PRODUCT_TYPES_BY_NAME.get(item.product_type)
            low, high = product_type.prices if product_type else (9.99, 49.99)
            points = [point for point in PRICE_POINTS if low <= point <= high] or [low]
            # Skewed to the cheaper end of the range, as H&M's sales are (mean price about 0.028).
            point = points[int(len(points) * rng.random() ** 2)]
            price = by_product[item.article_id[:7]] = point / PRICE_SCALE
        prices.append(price)
    return prices


def _customers(
    rng: random.Random,
    count: int,
    categories: Mapping[tuple[str, ...], _Weighted[int]],
    coloured: Mapping[tuple[str, ...], _Weighted[int]],
) -> list[_Customer]:
    by_index_group: dict[str, list[tuple[tuple[str, str], float]]] = {}
    for (index_group, product_type), picker in categories.items():
        by_index_group.setdefault(index_group, []).append(((index_group, product_type), picker.total))
    category_pickers = {index_group: _Weighted(pairs) for index_group, pairs in by_index_group.items()}
    any_category = _Weighted(pair for pairs in by_index_group.values() for pair in pairs)
    colour_totals: dict[str, float] = {}
    for (_, _, colour), picker in coloured.items():
        colour_totals[colour] = colour_totals.get(colour, 0.0) + picker.total
    colours = _Weighted(colour_totals.items())
    present = [
        (_Weighted((group, weight) for group, weight in audience.items() if group in category_pickers), share)
        for audience, share in _AUDIENCES
        if any(group in category_pickers for group in audience)
    ]
    audiences = _Weighted(present) if present else None

    customers = []
    for number in range(count):
        favourites = []
        audience = audiences.pick(rng) if audiences else None
        for _ in range(3):
            picker = category_pickers[audience.pick(rng)] if audience else any_category
            favourites.append(picker.pick(rng))
        customers.append(
            _Customer(
                customer_id=hashlib.sha256(f"atelier-customer:{rng.random()!r}:{number}".encode()).hexdigest(),
                online=rng.betavariate(2.5, 1.2),
                categories=tuple(favourites),
                colours=(colours.pick(rng), colours.pick(rng)),
            )
        )
    return customers


def _trending(seed: int, week: int, count: int) -> list[int]:
    rng = random.Random(f"atelier-trending:{seed}:{week}")
    return rng.sample(range(count), max(1, int(count * _TRENDING_SHARE)))


def _daily_counts(n: int, first_day: date, days: int) -> list[int]:
    """`n` split over the days by weekday volume and a slow upward trend, summing exactly to `n`."""
    weights = [_WEEKDAY_VOLUME[(first_day + timedelta(days=d)).weekday()] * (1.0 + 0.3 * d / days) for d in range(days)]
    total = sum(weights)
    shares = [n * weight / total for weight in weights]
    counts = [int(share) for share in shares]
    by_remainder = sorted(range(days), key=lambda d: (counts[d] - shares[d], d))
    for d in by_remainder[: n - sum(counts)]:
        counts[d] += 1
    return counts


def write_synthetic_catalog(
    directory: str | Path,
    n_articles: int = H_AND_M_ARTICLES,
    n_transactions: int = DEFAULT_TRANSACTIONS,
    seed: int = 0,
    end_day: date = DEFAULT_END_DAY,
    days: int = DEFAULT_DAYS,
    images: bool = False,
) -> HMDataset:
    """Writes articles.csv and transactions_train.csv into `directory` (each replaced whole, never half-written).

    With `images`, also each article's photo into directory/images (atelier.offline.catalog.article_images;
    fetches Fashion-MNIST on first use), and the dataset returned names that folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    items: list[_Item] = []

    def articles() -> Iterator[Iterable[str]]:
        for row in generate_articles(n_articles, seed):
            items.append(_item(row))
            yield row.values()

    articles_path = _write_csv(directory / ARTICLES_FILE, ARTICLE_COLUMNS, articles())
    transactions_path = _write_csv(
        directory / TRANSACTIONS_FILE,
        TRANSACTION_COLUMNS,
        (row.values() for row in _transactions(items, n_transactions, seed, end_day, days, None)),
    )
    dataset = HMDataset(directory=directory, articles=articles_path, transactions=transactions_path)
    if images:
        # Imported here: Pillow and the photo code are only needed for the photos.
        from atelier.offline.catalog.article_images import with_images_folder, write_article_images

        dataset = with_images_folder(dataset)
        write_article_images(dataset)
    return dataset


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Iterable[str]]) -> Path:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    os.replace(partial, path)
    return path
