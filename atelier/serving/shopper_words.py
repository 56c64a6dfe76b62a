"""The words shoppers type where the catalogue says something else ("navy" for Dark Blue, "pants"
for Trousers, "ladies" for Ladieswear): one vocabulary for the evaluation's queries, the reranker's
training queries and search's explanations."""

from __future__ import annotations

from collections.abc import Mapping

# A catalogue phrase (lower case) -> what shoppers type for it.
SHOPPER_WORDS: Mapping[str, tuple[str, ...]] = {
    # nouns
    "t-shirt": ("tee", "t shirt"),
    "trousers": ("pants",),
    "jumper": ("pullover",),
    "joggers": ("sweatpants", "jogging bottoms"),
    "pyjamas": ("pjs",),
    "sunglasses": ("shades",),
    "cardigan": ("cardi",),
    # colours and colour families
    "dark blue": ("navy", "navy blue"),
    "off white": ("cream", "ivory"),
    "dark grey": ("charcoal", "dark gray"),
    "light grey": ("light gray", "pale grey"),
    "grey": ("gray",),
    "khaki green": ("olive", "olive green"),
    "light beige": ("sand", "stone"),
    "dark red": ("burgundy", "wine red"),
    "light pink": ("pale pink", "blush pink"),
    "light blue": ("pale blue", "sky blue"),
    "dark green": ("bottle green", "forest green"),
    # audiences
    "women's": ("ladies", "womens"),
    "men's": ("mens", "for men"),
    "kids'": ("children's", "kids"),
    "sports": ("gym", "training"),
}

# An index group (the catalogue's audience) -> the audience word a query names it by.
AUDIENCE_OF_INDEX_GROUP: Mapping[str, str] = {
    "Ladieswear": "women's",
    "Divided": "women's",
    "Menswear": "men's",
    "Baby/Children": "kids'",
    "Sport": "sports",
}
