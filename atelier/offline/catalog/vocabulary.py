"""The fashion vocabulary of the synthetic catalogue, modelled on H&M's articles.csv.

Names and attribute values follow H&M's; the numeric codes are plausible and fixed per value
(product_type_no per product type, colour_group_code per colour, ...), not necessarily H&M's own.

Queries are built from these constants ("black trousers", "red dress") and judged by attribute
agreement, so the words a user types are guaranteed to be in the matching articles' text:
a product type's words (`ProductType.terms`) are in its type name, a colour's `family` word is
in its colour name, and each word of STYLE_TERMS is in the name of every article of its style
and of no article of another product type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LADIESWEAR = "Ladieswear"
DIVIDED = "Divided"
MENSWEAR = "Menswear"
CHILDREN = "Baby/Children"
SPORT = "Sport"

# index_group_name -> index_group_no
INDEX_GROUPS: Mapping[str, int] = {LADIESWEAR: 1, DIVIDED: 2, MENSWEAR: 3, CHILDREN: 4, SPORT: 26}

# index_code -> (index_name, index_group_name)
INDEXES: Mapping[str, tuple[str, str]] = {
    "A": ("Ladieswear", LADIESWEAR),
    "B": ("Lingeries/Tights", LADIESWEAR),
    "C": ("Ladies Accessories", LADIESWEAR),
    "D": ("Divided", DIVIDED),
    "F": ("Menswear", MENSWEAR),
    "G": ("Baby Sizes 50-98", CHILDREN),
    "H": ("Children Sizes 92-140", CHILDREN),
    "I": ("Children Sizes 134-170", CHILDREN),
    "J": ("Children Accessories, Swimwear", CHILDREN),
    "S": ("Sport", SPORT),
}

PRODUCT_GROUPS: tuple[str, ...] = (
    "Garment Upper body",
    "Garment Lower body",
    "Garment Full body",
    "Underwear",
    "Socks & Tights",
    "Swimwear",
    "Nightwear",
    "Shoes",
    "Accessories",
)

# garment_group_name -> garment_group_no
GARMENT_GROUPS: Mapping[str, int] = {
    "Jersey Basic": 1002,
    "Knitwear": 1003,
    "Jersey Fancy": 1005,
    "Woven/Jersey/Knitted mix Baby": 1006,
    "Outdoor": 1007,
    "Dressed": 1008,
    "Trousers": 1009,
    "Blouses": 1010,
    "Shorts": 1011,
    "Shirts": 1012,
    "Dresses Ladies": 1013,
    "Skirts": 1014,
    "Trousers Denim": 1016,
    "Under-, Nightwear": 1017,
    "Swimwear": 1018,
    "Accessories": 1019,
    "Shoes": 1020,
    "Socks and Tights": 1021,
    "Dresses/Skirts girls": 1025,
}

# graphical_appearance_name -> graphical_appearance_no
GRAPHICAL_APPEARANCES: Mapping[str, int] = {
    "All over pattern": 1010001,
    "Denim": 1010004,
    "Check": 1010005,
    "Dot": 1010006,
    "Front print": 1010008,
    "Melange": 1010010,
    "Metallic": 1010011,
    "Other structure": 1010014,
    "Placement print": 1010015,
    "Solid": 1010016,
    "Stripe": 1010017,
    "Lace": 1010021,
    "Jacquard": 1010023,
}

# perceived_colour_value_id -> perceived_colour_value_name
PERCEIVED_COLOUR_VALUES: Mapping[int, str] = {
    1: "Dusty Light",
    2: "Medium Dusty",
    3: "Light",
    4: "Dark",
    5: "Bright",
    7: "Medium",
}

# perceived_colour_master_name -> perceived_colour_master_id
PERCEIVED_COLOUR_MASTERS: Mapping[str, int] = {
    "Blue": 2,
    "Khaki green": 3,
    "Pink": 4,
    "Black": 5,
    "Orange": 6,
    "Brown": 7,
    "Yellow": 8,
    "White": 9,
    "Beige": 11,
    "Grey": 12,
    "Turquoise": 13,
    "Lilac Purple": 15,
    "Metal": 16,
    "Red": 18,
    "Green": 19,
}


@dataclass(frozen=True)
class Colour:
    name: str  # colour_group_name
    code: int  # colour_group_code
    value_id: int  # perceived_colour_value_id
    master: str  # perceived_colour_master_name
    family: str  # the word a user types for it ("blue" for Dark Blue); always in `name`, lower-cased
    weight: float  # share of articles in the default palette

    @property
    def value_name(self) -> str:
        return PERCEIVED_COLOUR_VALUES[self.value_id]

    @property
    def master_id(self) -> int:
        return PERCEIVED_COLOUR_MASTERS[self.master]


COLOURS: tuple[Colour, ...] = (
    Colour("Black", 9, 4, "Black", "black", 21.0),
    Colour("White", 10, 3, "White", "white", 9.0),
    Colour("Off White", 11, 1, "White", "white", 2.6),
    Colour("Light Beige", 12, 1, "Beige", "beige", 3.2),
    Colour("Beige", 13, 2, "Beige", "beige", 2.6),
    Colour("Dark Beige", 15, 2, "Beige", "beige", 1.5),
    Colour("Light Grey", 6, 3, "Grey", "grey", 2.0),
    Colour("Grey", 7, 2, "Grey", "grey", 4.3),
    Colour("Dark Grey", 8, 4, "Grey", "grey", 2.6),
    Colour("Light Blue", 71, 3, "Blue", "blue", 2.9),
    Colour("Blue", 72, 7, "Blue", "blue", 3.1),
    Colour("Dark Blue", 73, 4, "Blue", "blue", 11.5),
    Colour("Turquoise", 82, 7, "Turquoise", "turquoise", 0.6),
    Colour("Light Pink", 51, 3, "Pink", "pink", 5.5),
    Colour("Pink", 52, 7, "Pink", "pink", 2.0),
    Colour("Dark Pink", 53, 4, "Pink", "pink", 0.7),
    Colour("Red", 42, 5, "Red", "red", 2.9),
    Colour("Dark Red", 43, 4, "Red", "red", 2.2),
    Colour("Purple", 62, 7, "Lilac Purple", "purple", 0.6),
    Colour("Green", 92, 7, "Green", "green", 1.0),
    Colour("Dark Green", 93, 4, "Green", "green", 2.0),
    Colour("Khaki green", 19, 2, "Khaki green", "khaki", 2.6),
    Colour("Yellow", 22, 5, "Yellow", "yellow", 1.6),
    Colour("Orange", 32, 5, "Orange", "orange", 1.1),
    Colour("Brown", 17, 4, "Brown", "brown", 1.2),
    Colour("Silver", 3, 7, "Metal", "silver", 0.0),
    Colour("Gold", 2, 5, "Metal", "gold", 0.0),
)
COLOURS_BY_NAME: Mapping[str, Colour] = {colour.name: colour for colour in COLOURS}


def _colour_words() -> dict[str, tuple[str, ...]]:
    words: dict[str, list[str]] = {}
    for colour in COLOURS:
        words.setdefault(colour.family, []).append(colour.name)
    return {word: tuple(names) for word, names in words.items()}


# What a user types -> the colour_group_names it stands for: "blue" -> Light Blue, Blue, Dark Blue.
COLOUR_WORDS: Mapping[str, tuple[str, ...]] = _colour_words()

_DEFAULT_PALETTE = tuple((colour.name, colour.weight) for colour in COLOURS if colour.weight > 0)
# Weighted colour_group_names a style draws its colour variants from.
PALETTES: Mapping[str, tuple[tuple[str, float], ...]] = {
    "default": _DEFAULT_PALETTE,
    "denim": (
        ("Dark Blue", 5.0),
        ("Blue", 4.0),
        ("Light Blue", 4.0),
        ("Black", 3.0),
        ("Dark Grey", 1.2),
        ("Grey", 1.0),
        ("White", 1.0),
        ("Off White", 0.5),
        ("Light Beige", 0.3),
    ),
    "basics": (
        ("Black", 8.0),
        ("White", 5.0),
        ("Grey", 2.0),
        ("Dark Grey", 1.0),
        ("Light Beige", 2.0),
        ("Dark Blue", 2.0),
        ("Beige", 1.0),
        ("Light Pink", 1.0),
        ("Off White", 1.0),
    ),
    "tailoring": (
        ("Black", 6.0),
        ("Dark Blue", 3.0),
        ("Dark Grey", 2.0),
        ("Grey", 2.0),
        ("Beige", 2.0),
        ("Light Beige", 1.5),
        ("Dark Beige", 1.0),
        ("Brown", 1.0),
        ("Off White", 1.0),
        ("Khaki green", 0.8),
        ("Dark Green", 0.5),
        ("Pink", 0.5),
        ("White", 0.5),
        ("Dark Red", 0.5),
    ),
    "accessories": (*_DEFAULT_PALETTE, ("Silver", 1.0), ("Gold", 1.5)),
    "jewellery": (("Gold", 6.0), ("Silver", 4.0), ("Black", 0.5), ("White", 0.5), ("Off White", 0.5)),
}

# Weighted graphical_appearance_names a style's variants draw from.
GRAPHICS: Mapping[str, tuple[tuple[str, float], ...]] = {
    "default": (
        ("Solid", 60.0),
        ("All over pattern", 12.0),
        ("Stripe", 6.0),
        ("Melange", 5.0),
        ("Check", 3.0),
        ("Dot", 2.0),
        ("Other structure", 3.0),
        ("Jacquard", 1.0),
        ("Lace", 1.0),
    ),
    "plain": (("Solid", 85.0), ("Melange", 10.0), ("Stripe", 5.0)),
    "denim": (("Denim", 85.0), ("Solid", 15.0)),
    "print": (("Front print", 50.0), ("Placement print", 20.0), ("All over pattern", 20.0), ("Solid", 10.0)),
    "knit": (("Solid", 55.0), ("Melange", 20.0), ("Stripe", 10.0), ("Jacquard", 10.0), ("Other structure", 5.0)),
    "shirt": (("Solid", 55.0), ("Stripe", 15.0), ("Check", 20.0), ("All over pattern", 10.0)),
    "lace": (("Lace", 60.0), ("Solid", 40.0)),
    "metal": (("Metallic", 70.0), ("Solid", 30.0)),
}

# Shelf prices (SEK-like); H&M's price column is such a price divided by PRICE_SCALE.
PRICE_POINTS: tuple[float, ...] = (
    4.99, 7.99, 9.99, 12.99, 14.99, 17.99, 19.99, 24.99, 29.99, 34.99, 39.99, 49.99, 59.99,
    69.99, 79.99, 99.99, 129.99, 149.99, 199.99, 249.99, 299.99,
)  # fmt: skip
PRICE_SCALE = 590.0


@dataclass(frozen=True)
class Modifier:
    """A fit or style word: "Slim Fit" in names, "slim-fit" in descriptions, maybe its own material."""

    name: str
    adjective: str
    material: str | None = None


@dataclass(frozen=True)
class Style:
    """One kind of product within a product type: how its names and descriptions are composed."""

    noun: str  # in names: "Jeans"
    description_noun: str  # starts descriptions: "jeans"
    modifiers: tuple[Modifier, ...]
    materials: tuple[str, ...]
    # One option is drawn from each slot; the first two slots are always used, later ones sometimes.
    feature_slots: tuple[tuple[str, ...], ...]
    garment_group: str
    index_groups: frozenset[str] | None = None  # None: the type's index groups other than Sport
    palette: str = "default"
    graphics: str = "default"
    extras: tuple[str, ...] = ()  # optional second sentences
    weight: float = 1.0


@dataclass(frozen=True)
class ProductType:
    name: str  # product_type_name
    number: int  # product_type_no
    group: str  # product_group_name
    weight: float  # share of products (H&M has many trousers and dresses, few coats)
    index_groups: Mapping[str, float]
    prices: tuple[float, float]  # cheapest and dearest price point
    styles: tuple[Style, ...] = field(default=())

    @property
    def terms(self) -> tuple[str, ...]:
        """The words a user types for it, all in its name: "Hat/beanie" -> ("hat", "beanie")."""
        return tuple(word.strip() for word in self.name.lower().split("/") if word.strip())


def _mods(*specs: str) -> tuple[Modifier, ...]:
    """Modifiers from "name|adjective|material" specs.

    "Slim Fit|slim-fit" is Modifier("Slim Fit", "slim-fit"); "Linen|linen|a linen blend" brings its
    own material; "Oversized" means "Oversized|oversized"; "" is the bare noun.
    """
    modifiers = []
    for spec in specs:
        name, _, rest = spec.partition("|")
        adjective, _, material = rest.partition("|")
        modifiers.append(Modifier(name, adjective or name.lower(), material or None))
    return tuple(modifiers)


L, D, M, K, S = LADIESWEAR, DIVIDED, MENSWEAR, CHILDREN, SPORT
WOMEN = frozenset({L, D})
WOMEN_KIDS = frozenset({L, D, K})
MEN = frozenset({M})
MEN_KIDS = frozenset({M, K})
KIDS = frozenset({K})
SPORT_ONLY = frozenset({S})

FUNCTIONAL = ("fast-drying functional fabric", "soft, fast-drying functional fabric")
SWEAT = ("sweatshirt fabric", "soft, brushed cotton-blend sweatshirt fabric")
JERSEY = ("cotton jersey", "soft cotton jersey", "organic cotton jersey", "slub jersey")
WAIST = ("a regular waist", "a high waist")
RIB_HEMS = ("ribbing around the neckline, cuffs and hem", "ribbed cuffs and hem")

PRODUCT_TYPES: tuple[ProductType, ...] = (
    ProductType("Trousers", 272, "Garment Lower body", 10.6, {L: 0.35, D: 0.15, M: 0.2, K: 0.25, S: 0.05},
                (19.99, 79.99), (
        Style("Jeans", "jeans", _mods(
            "Skinny Fit|skinny-fit", "Slim Fit|slim-fit", "Straight|straight-leg", "Wide|wide-leg", "Mom|mom",
            "Flared|flared", "Baggy|baggy", "Loose|loose-fit", "Skinny High|skinny, high-waisted",
        ), ("washed denim", "stretch denim", "washed cotton denim", "washed superstretch denim"), (
            ("a high waist", "a regular waist"), ("zip fly and button", "button fly"),
            ("five pockets", "front and back pockets"), ("raw-edge hems", "ankle-length legs"),
        ), "Trousers Denim", WOMEN_KIDS, "denim", "denim", weight=2.5),
        Style("Jeans", "jeans", _mods(
            "Slim Fit|slim-fit", "Skinny Fit|skinny-fit", "Regular Fit|regular-fit", "Relaxed Fit|relaxed-fit",
            "Straight|straight-leg", "Loose|loose-fit", "Tapered|tapered", "Baggy|baggy",
        ), ("washed denim", "stretch denim", "rigid cotton denim"), (
            ("a regular waist",), ("zip fly and button", "button fly"), ("five pockets",), ("tapered legs",),
        ), "Trousers Denim", MEN, "denim", "denim", weight=2.0),
        Style("Chinos", "chinos", _mods("Slim Fit|slim-fit", "Regular Fit|regular-fit", "Relaxed Fit|relaxed-fit",
                                        "Skinny Fit|skinny-fit"),
              ("cotton twill", "stretch cotton twill", "washed cotton"), (
            ("a regular waist",), ("zip fly and button",),
            ("side pockets and welt back pockets", "diagonal side pockets and jetted back pockets"),
        ), "Trousers", frozenset({M, K, L}), "tailoring", "plain"),
        Style("Joggers", "joggers", _mods("", "Relaxed Fit|relaxed-fit", "Slim Fit|slim-fit",
                                          "Regular Fit|regular-fit"), SWEAT, (
            ("an elasticated drawstring waist", "an elasticated waist"),
            ("side pockets", "side pockets and a back pocket"),
            ("ribbed hems", "elasticated hems"),
        ), "Trousers", None, graphics="plain", weight=1.2),
        Style("Cargo Trousers", "cargo trousers", _mods("", "Relaxed Fit|relaxed-fit", "Loose Fit|loose-fit"),
              ("cotton twill", "ripstop cotton", "nylon"), (
            ("a regular waist", "an elasticated drawstring waist"), ("zip fly and button",),
            ("side pockets, back pockets and bellows leg pockets with a flap",),
        ), "Trousers", None, graphics="plain", weight=0.8),
        Style("Trousers", "trousers", _mods("Tailored|tailored", "Wide|wide", "Straight|straight-cut",
                                            "Ankle-length|ankle-length", "Linen-blend|linen-blend|a linen blend",
                                            "Pull-on|pull-on", "Flared|flared"),
              ("woven fabric", "twill", "crêpe fabric", "a viscose blend"), (
            WAIST, ("a concealed hook-and-eye fastener and zip fly", "an elasticated waistband"),
            ("pressed pleats", "creases down the front of the legs"), ("side pockets",),
        ), "Trousers", WOMEN_KIDS, "tailoring", "plain", weight=1.5),
        Style("Suit Trousers", "suit trousers", _mods("Slim Fit|slim-fit", "Skinny Fit|skinny-fit",
                                                      "Regular Fit|regular-fit"),
              ("woven fabric", "stretch wool-blend fabric"), (
            ("a regular waist",), ("a hook-and-eye fastener and zip fly",), ("side pockets and welt back pockets",),
        ), "Dressed", MEN, "tailoring", "plain", weight=0.5),
        Style("Sports Trousers", "sports trousers", _mods("", "Tapered|tapered", "Running|running"), FUNCTIONAL, (
            ("an elasticated drawstring waist",), ("zipped side pockets",), ("reflective details",),
        ), "Trousers", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Dress", 265, "Garment Full body", 9.8, {L: 0.55, D: 0.25, K: 0.2}, (14.99, 99.99), (
        Style("Dress", "dress", _mods(
            "Wrap|wrap", "Shirt|shirt", "Maxi|maxi", "Midi|midi", "Mini|short", "Smocked|smocked", "Tiered|tiered",
            "Puff-sleeved|puff-sleeved", "Satin|satin|satin", "Linen-blend|linen-blend|a linen blend",
            "Chiffon|chiffon|airy chiffon", "Sequined|sequined", "A-line|A-line", "Flounced|flounced",
        ), ("woven fabric", "viscose", "crinkled cotton", "crêpe fabric", "cotton poplin"), (
            ("a round neckline", "a V-neck", "a square neckline", "a collar and buttons down the front"),
            ("short puff sleeves", "long sleeves", "short sleeves", "long balloon sleeves"),
            ("a seam at the waist", "a tie belt at the waist", "a gently flared skirt", "a slit in one side"),
        ), "Dresses Ladies", WOMEN_KIDS, weight=2.5),
        Style("Dress", "dress", _mods("Jersey|jersey", "Bodycon|bodycon", "Ribbed|ribbed|ribbed jersey",
                                      "T-shirt|T-shirt", "Sweatshirt|sweatshirt|sweatshirt fabric",
                                      "Fitted|fitted", "Draped|draped"),
              ("jersey", "soft viscose jersey", "cotton jersey", "ribbed jersey"), (
            ("a round neckline", "a wide neckline", "a V-neck"), ("long sleeves", "short sleeves", "no sleeves"),
            ("a gently rounded hem", "a slit at the back"),
        ), "Jersey Fancy", WOMEN_KIDS, graphics="plain", weight=1.2),
        Style("Dress", "dress", _mods("Slip|slip", "Strappy|strappy", "Lace|lace|lace"),
              ("satin", "woven fabric", "viscose"), (
            ("narrow, adjustable shoulder straps", "narrow shoulder straps that cross at the back"),
            ("a V-neck", "a straight neckline"), ("a concealed zip in one side",),
        ), "Dresses Ladies", WOMEN),
        Style("Dress", "dress", _mods("Knitted|knitted", "Rib-knit|rib-knit|a soft rib knit",
                                      "Fine-knit|fine-knit|a soft, fine knit"),
              ("a soft knit", "a cotton-blend knit"), (
            ("a round neckline", "a polo neck"), ("long sleeves",), RIB_HEMS,
        ), "Knitwear", WOMEN_KIDS, graphics="knit", weight=0.5),
    )),
    ProductType("Sweater", 252, "Garment Upper body", 8.8, {L: 0.35, D: 0.12, M: 0.2, K: 0.33}, (14.99, 79.99), (
        Style("Jumper", "jumper", _mods(
            "Fine-knit|fine-knit", "Rib-knit|rib-knit", "Cable-knit|cable-knit", "Oversized|oversized",
            "Knitted|knitted", "Turtleneck|turtleneck", "Mohair-blend|mohair-blend|a soft, fluffy mohair-blend knit",
            "Cashmere|cashmere|soft cashmere", "Wool-blend|wool-blend|a wool-blend knit",
        ), ("a soft, fine knit", "a chunky knit containing some wool", "a rib knit", "a cotton knit"), (
            ("a round neckline", "a V-neck", "a high collar", "a polo neck"),
            ("dropped shoulders", "long raglan sleeves", "long sleeves"), RIB_HEMS,
        ), "Knitwear", None, graphics="knit", weight=1.6),
        Style("Sweatshirt", "sweatshirt", _mods("", "Oversized|oversized", "Relaxed Fit|relaxed-fit",
                                                "Regular Fit|regular-fit", "Printed|printed", "Cropped|cropped"),
              SWEAT, (
            ("a round, rib-trimmed neckline", "a rib-trimmed neckline"), ("dropped shoulders", "long sleeves"),
            ("ribbing at the cuffs and hem",),
        ), "Jersey Fancy", None, graphics="print"),
    )),
    ProductType("T-shirt", 255, "Garment Upper body", 7.5, {L: 0.2, D: 0.12, M: 0.28, K: 0.33, S: 0.07},
                (7.99, 24.99), (
        Style("T-shirt", "T-shirt", _mods("", "Regular Fit|regular-fit", "Slim Fit|slim-fit", "Oversized|oversized",
                                          "Boxy|boxy", "Cotton|cotton", "Fitted|fitted", "Cropped|cropped"), JERSEY, (
            ("a round neckline", "a rib-trimmed round neckline", "a V-neck"),
            ("short sleeves", "dropped shoulders and short sleeves"), ("a straight-cut hem", "a rounded hem"),
        ), "Jersey Basic", None, "basics", "plain", weight=1.5),
        Style("T-shirt", "T-shirt", _mods("Printed|printed", "Graphic|graphic", "Oversized Printed|oversized, printed"),
              JERSEY, (
            ("a round neckline", "a rib-trimmed neckline"), ("short sleeves", "dropped shoulders and short sleeves"),
        ), "Jersey Fancy", None, graphics="print", extras=("With a print motif on the front.",)),
        Style("Sports T-shirt", "sports T-shirt", _mods("", "Regular Fit|regular-fit", "Slim Fit|slim-fit"),
              FUNCTIONAL, (
            ("a round neckline",), ("short raglan sleeves", "short sleeves"),
            ("flatlock seams for added comfort", "reflective details"),
        ), "Jersey Fancy", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Top", 254, "Garment Upper body", 3.9, {L: 0.45, D: 0.25, K: 0.2, S: 0.1}, (9.99, 34.99), (
        Style("Top", "top", _mods(
            "Crop|cropped", "Ribbed|ribbed|ribbed jersey", "Jersey|jersey", "Wrap|wrap", "Lace|lace|stretch lace",
            "Long-sleeved|long-sleeved", "Off-the-shoulder|off-the-shoulder", "Draped|draped",
        ), ("soft jersey", "viscose jersey", "cotton jersey"), (
            ("a round neckline", "a V-neck", "a square neckline", "a wide neckline"),
            ("long sleeves", "short sleeves"), ("a straight-cut hem", "a slightly shorter, cropped length"),
        ), "Jersey Fancy", WOMEN_KIDS),
        Style("Sports Top", "sports top", _mods("", "Seamless|seamless", "Cropped|cropped"), FUNCTIONAL, (
            ("a round neckline", "a racerback"), ("long sleeves", "short sleeves"), ("flatlock seams",),
        ), "Jersey Fancy", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Blouse", 258, "Garment Upper body", 3.8, {L: 0.7, D: 0.2, K: 0.1}, (17.99, 59.99), (
        Style("Blouse", "blouse", _mods(
            "Satin|satin|satin", "Chiffon|chiffon|airy chiffon", "Puff-sleeved|puff-sleeved", "Lace|lace|lace",
            "Linen-blend|linen-blend|a linen blend", "Tie-neck|tie-neck", "Oversized|oversized",
            "Embroidered|embroidered", "Frill-trimmed|frill-trimmed",
        ), ("woven fabric", "crinkled viscose", "cotton poplin", "crêpe fabric"), (
            ("a collar", "a V-neck", "a round neckline", "a tie at the neckline"),
            ("buttons down the front", "a concealed button placket", "a button at the back of the neck"),
            ("long sleeves with buttoned cuffs", "short puff sleeves", "long balloon sleeves"),
        ), "Blouses", WOMEN_KIDS),
    )),
    ProductType("Jacket", 301, "Garment Upper body", 3.7, {L: 0.25, D: 0.1, M: 0.25, K: 0.3, S: 0.1}, (39.99, 149.99), (
        Style("Jacket", "jacket", _mods("Denim|denim", "Oversized Denim|oversized denim"),
              ("washed cotton denim", "rigid denim"), (
            ("a collar and buttons down the front",), ("flap chest pockets", "chest pockets with a button"),
            ("adjustable button tabs at the sides", "side pockets"),
        ), "Outdoor", None, "denim", "denim"),
        Style("Jacket", "jacket", _mods("Puffer|puffer", "Padded|padded", "Quilted|quilted",
                                        "Lightweight Puffer|lightweight puffer"),
              ("woven fabric", "water-repellent nylon", "shiny woven fabric"), (
            ("a stand-up collar", "a detachable hood", "a lined drawstring hood"),
            ("a zip down the front", "a zip and press-studs down the front"),
            ("zipped side pockets", "side pockets with a press-stud"), ("elasticated cuffs",),
        ), "Outdoor", None, graphics="plain", extras=("Lined.", "Padded lining."), weight=1.5),
        Style("Jacket", "jacket", _mods("Bomber|bomber", "Biker|biker|faux leather", "Teddy|teddy|faux shearling",
                                        "Utility|utility", "Corduroy|corduroy|corduroy"),
              ("nylon", "cotton twill", "water-repellent fabric"), (
            ("a collar", "a ribbed stand-up collar"), ("a zip down the front", "press-studs down the front"),
            ("side pockets", "flap chest pockets"),
        ), "Outdoor", None, graphics="plain", extras=("Lined.",)),
        Style("Jacket", "jacket", _mods("Running|running", "Training|training", "Outdoor|outdoor"),
              ("windproof, water-repellent fabric",), (
            ("a stand-up collar", "a lined hood"), ("a zip down the front",),
            ("zipped side pockets",), ("reflective details",),
        ), "Outdoor", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Shorts", 274, "Garment Lower body", 3.7, {L: 0.25, D: 0.12, M: 0.2, K: 0.33, S: 0.1}, (9.99, 39.99), (
        Style("Shorts", "shorts", _mods("Denim|denim", "High Waist Denim|high-waisted denim",
                                        "Baggy Denim|baggy denim"), ("washed denim", "cotton denim"), (
            ("a high waist", "a regular waist"), ("zip fly and button",), ("five pockets",),
            ("raw-edge hems", "turn-ups at the hems"),
        ), "Shorts", None, "denim", "denim"),
        Style("Shorts", "shorts", _mods("Chino|chino", "Regular Fit Chino|regular-fit chino", "Cargo|cargo",
                                        "Linen-blend|linen-blend|a linen blend"), ("cotton twill", "washed cotton"), (
            ("a regular waist", "an elasticated waist"), ("zip fly and button", "a drawstring"),
            ("side pockets and welt back pockets",),
        ), "Shorts", None, "tailoring", "plain"),
        Style("Shorts", "shorts", _mods("Sweat|sweatshirt", "Relaxed Fit Sweat|relaxed-fit sweatshirt"), SWEAT, (
            ("an elasticated drawstring waist",), ("side pockets",),
        ), "Shorts", None, graphics="plain"),
        Style("Shorts", "shorts", _mods("Running|running", "Cycling|cycling", "Sports|sports"), FUNCTIONAL, (
            ("a wide, elasticated waist", "an elasticated drawstring waist"), ("a hidden key pocket",),
            ("inner shorts", "reflective details"),
        ), "Shorts", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Shirt", 259, "Garment Upper body", 3.2, {L: 0.2, D: 0.05, M: 0.5, K: 0.25}, (19.99, 59.99), (
        Style("Shirt", "shirt", _mods(
            "Slim Fit|slim-fit", "Regular Fit|regular-fit", "Relaxed Fit|relaxed-fit",
            "Regular Fit Oxford|regular-fit Oxford|Oxford cotton", "Linen|linen|a linen blend",
            "Flannel|flannel|cotton flannel", "Denim|denim|cotton denim", "Corduroy|corduroy|cotton corduroy",
            "Easy-iron|easy-iron|easy-iron cotton poplin", "Checked|checked", "Resort|resort",
        ), ("cotton poplin", "cotton twill", "woven cotton", "cotton chambray"), (
            ("a turn-down collar", "a button-down collar", "a resort collar"),
            ("a classic front", "buttons down the front"),
            ("long sleeves with buttoned cuffs", "short sleeves"), ("a yoke at the back", "a rounded hem"),
        ), "Shirts", None, graphics="shirt"),
    )),
    ProductType("Vest top", 253, "Garment Upper body", 2.8, {L: 0.45, D: 0.2, M: 0.1, K: 0.1, S: 0.15}, (4.99, 19.99), (
        Style("Vest Top", "vest top", _mods("", "Ribbed|ribbed|ribbed cotton jersey", "Cotton|cotton",
                                            "Racerback|racerback", "Fitted|fitted"),
              ("cotton jersey", "soft jersey", "ribbed cotton jersey"), (
            ("a round neckline", "a deep neckline"), ("a straight-cut hem", "a rounded hem"),
        ), "Jersey Basic", None, "basics", "plain", weight=1.5),
        Style("Strap Top", "strap top", _mods("", "Jersey|jersey", "Lace-trimmed|lace-trimmed"),
              ("cotton jersey", "soft viscose jersey"), (
            ("narrow shoulder straps", "narrow, adjustable shoulder straps"), ("a straight neckline", "a V-neck"),
        ), "Jersey Basic", WOMEN_KIDS, "basics", "plain"),
        Style("Sports Vest Top", "sports vest top", _mods("", "Racerback|racerback", "Seamless|seamless"), FUNCTIONAL, (
            ("a racerback", "a round neckline"), ("flatlock seams",),
        ), "Jersey Fancy", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Underwear bottom", 286, "Underwear", 2.6, {L: 0.6, M: 0.25, K: 0.15}, (7.99, 24.99), (
        Style("Briefs", "briefs", _mods("Thong|thong", "Bikini|bikini", "Hipster|hipster", "Brazilian|Brazilian",
                                        "Lace Thong|lace thong|lace", "High Waist|high-waisted",
                                        "5-pack Hipster|5-pack hipster"),
              ("cotton jersey", "microfibre", "soft, stretch jersey"), (
            ("a low waist", "a mid waist", "a high waist"), ("a lined gusset",), ("lace trims", "no visible seams"),
        ), "Under-, Nightwear", frozenset({L}), "basics", "lace"),
        Style("Briefs", "briefs", _mods("5-pack|5-pack", "7-pack|7-pack", "Cotton|cotton"), ("cotton jersey",), (
            ("an elasticated waist", "a soft, covered elastic waist"),
        ), "Under-, Nightwear", KIDS, graphics="print"),
        Style("Boxer Shorts", "boxer shorts", _mods("", "3-pack|3-pack", "Woven|woven|woven cotton"),
              ("cotton jersey", "woven cotton"), (
            ("an elasticated waist", "a covered elastic waist"), ("an opening at the front",),
        ), "Under-, Nightwear", MEN, "basics", "shirt"),
        Style("Trunks", "trunks", _mods("3-pack|3-pack", "5-pack|5-pack", "Short|short", "Long|long"),
              ("cotton jersey", "stretch cotton jersey"), (
            ("a jacquard-weave waistband", "a covered elastic waist"), ("a lined front",),
        ), "Under-, Nightwear", MEN_KIDS, "basics", "plain"),
    )),
    ProductType("Skirt", 275, "Garment Lower body", 2.6, {L: 0.55, D: 0.25, K: 0.2}, (14.99, 59.99), (
        Style("Skirt", "skirt", _mods(
            "Pleated|pleated", "Denim|denim|washed denim", "A-line|A-line", "Mini|short", "Midi|calf-length",
            "Satin|satin|satin", "Wrap|wrap", "Tulle|tulle|tulle", "Tiered|tiered",
        ), ("woven fabric", "crêpe fabric", "viscose", "cotton twill"), (
            WAIST, ("a concealed zip at the back", "a concealed zip in one side", "buttons at the side"),
            ("a flared hem", "a slit at the back", "a wide flounce at the hem"),
        ), "Skirts", None),
    )),
    ProductType("Hoodie", 245, "Garment Upper body", 2.2, {L: 0.15, D: 0.15, M: 0.3, K: 0.35, S: 0.05},
                (19.99, 49.99), (
        Style("Hoodie", "hoodie", _mods("", "Oversized|oversized", "Relaxed Fit|relaxed-fit", "Regular Fit|regular-fit",
                                        "Printed|printed", "Cropped|cropped", "Zip-through|zip-through"), SWEAT, (
            ("a lined drawstring hood", "a jersey-lined hood"), ("dropped shoulders", "long sleeves"),
            ("a kangaroo pocket", "side pockets"), ("ribbing at the cuffs and hem",),
        ), "Jersey Fancy", None, graphics="print"),
        Style("Sports Hoodie", "sports hoodie", _mods("", "Training|training"), FUNCTIONAL, (
            ("a wrapover hood",), ("thumbholes at the cuffs",),
        ), "Jersey Fancy", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Bra", 306, "Underwear", 2.1, {L: 0.85, S: 0.15}, (14.99, 39.99), (
        Style("Bra", "bra", _mods("Push-up|push-up", "Soft|soft", "Padded Underwired|padded, underwired",
                                  "T-shirt|T-shirt", "Non-wired|non-wired", "Balconette|balconette"),
              ("microfibre", "lace", "mesh", "soft jersey"), (
            ("moulded, padded cups", "underwired, lightly padded cups", "soft, non-wired cups"),
            ("narrow adjustable shoulder straps", "adjustable shoulder straps that can be crossed at the back"),
            ("a hook-and-eye fastening at the back",),
        ), "Under-, Nightwear", frozenset({L}), "basics", "lace", weight=2.0),
        Style("Bralette", "bralette", _mods("", "Lace|lace|lace", "Padded|padded"), ("lace", "microfibre"), (
            ("soft, non-wired cups",), ("narrow adjustable shoulder straps",),
        ), "Under-, Nightwear", frozenset({L}), "basics", "lace"),
        Style("Sports Bra", "sports bra", _mods("Medium Support|medium-support", "High Support|high-support",
                                                "Light Support|light-support"), FUNCTIONAL, (
            ("moulded, padded cups", "removable inserts"), ("a racerback", "wide shoulder straps"),
        ), "Jersey Fancy", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Socks", 302, "Socks & Tights", 1.8, {L: 0.3, M: 0.3, K: 0.35, S: 0.05}, (4.99, 17.99), (
        Style("Socks", "socks", _mods("5-pack|5-pack", "7-pack Trainer|7-pack trainer", "Ankle|ankle", "Knee|knee",
                                      "Fine-knit|fine-knit", "Ribbed|ribbed",
                                      "Wool-blend|wool-blend|a soft wool blend"),
              ("a soft cotton blend", "a fine-knit cotton blend"), (
            ("ribbed tops", "elasticated tops"), ("a reinforced heel and toe",),
        ), "Socks and Tights", None, "basics", "plain"),
        Style("Sports Socks", "sports socks", _mods("", "3-pack|3-pack", "Running|running"),
              ("a fast-drying functional yarn",), (
            ("cushioned soles",), ("ventilating mesh sections",),
        ), "Socks and Tights", SPORT_ONLY, "basics", "plain"),
    )),
    ProductType("Underwear Tights", 304, "Socks & Tights", 0.9, {L: 0.7, K: 0.3}, (7.99, 24.99), (
        Style("Tights", "tights", _mods("20 Denier|20 denier", "50 Denier|50 denier", "Fishnet|fishnet",
                                        "Shaping|shaping", "2-pack|2-pack"),
              ("sheer, matt microfibre", "soft, opaque microfibre"), (
            ("an elasticated waist", "a high waist"), ("a reinforced gusset",),
        ), "Socks and Tights", None, "basics", "plain"),
    )),
    ProductType("Leggings/Tights", 273, "Garment Lower body", 1.8, {L: 0.25, D: 0.1, K: 0.35, S: 0.3}, (9.99, 39.99), (
        Style("Leggings", "leggings", _mods("", "Ribbed|ribbed|ribbed jersey", "Flared|flared",
                                            "High Waist|high-waisted", "Cotton|cotton", "Seamless|seamless"),
              ("soft jersey", "cotton jersey"), (
            ("an elasticated waist", "a high, elasticated waist"),
        ), "Jersey Basic", None, "basics", "plain"),
        Style("Sports Tights", "sports tights", _mods("", "High Waist|high-waisted", "Shaping|shaping",
                                                      "Seamless|seamless"), FUNCTIONAL, (
            ("a wide, high waist", "a wide, elasticated waist"), ("a hidden key pocket at the back",),
            ("flatlock seams",),
        ), "Jersey Fancy", SPORT_ONLY, graphics="plain"),
    )),
    ProductType("Sneakers", 94, "Shoes", 1.5, {L: 0.4, M: 0.35, K: 0.25}, (24.99, 99.99), (
        Style("Trainers", "trainers", _mods("", "Chunky|chunky", "Canvas|canvas|canvas", "Mesh|mesh|mesh",
                                            "Platform|platform", "Faux Leather|faux leather|faux leather"),
              ("faux leather", "canvas", "mesh and faux leather"), (
            ("lacing at the front", "hook-and-loop fastenings"), ("a padded edge",),
            ("fabric linings and insoles",), ("patterned soles", "rubber soles"),
        ), "Shoes", None, "accessories", "plain"),
        Style("Sneakers", "sneakers", _mods("", "High-top|high-top", "Canvas|canvas|canvas"),
              ("canvas", "faux leather"), (
            ("lacing at the front",), ("rubber soles",),
        ), "Shoes", None, "accessories", "plain", weight=0.5),
    )),
    ProductType("Cardigan", 96, "Garment Upper body", 1.5, {L: 0.4, D: 0.1, M: 0.1, K: 0.4}, (19.99, 59.99), (
        Style("Cardigan", "cardigan", _mods("Fine-knit|fine-knit", "Rib-knit|rib-knit", "Oversized|oversized",
                                            "Cropped|cropped", "Cable-knit|cable-knit",
                                            "Mohair-blend|mohair-blend|a soft, fluffy knit containing some mohair"),
              ("a soft, fine knit", "a cotton-blend knit", "a rib knit"), (
            ("a V-neck", "a round neckline"), ("buttons down the front",),
            ("long sleeves", "dropped shoulders"), RIB_HEMS,
        ), "Knitwear", None, graphics="knit"),
    )),
    ProductType("Hat/beanie", 71, "Accessories", 1.3, {L: 0.3, D: 0.1, M: 0.25, K: 0.35}, (7.99, 24.99), (
        Style("Beanie", "beanie", _mods("", "Rib-knit|rib-knit", "Fine-knit|fine-knit",
                                        "Wool-blend|wool-blend|a soft wool blend", "Cable-knit|cable-knit"),
              ("a soft rib knit", "a cable knit containing some wool"), (
            ("a wide turn-up", "a pompom on top"),
        ), "Accessories", None, "accessories", "knit"),
        Style("Hat", "hat", _mods("Bucket|bucket", "Straw|straw|paper straw", "Fleece|fleece|soft fleece",
                                  "Wide-brimmed|wide-brimmed"), ("cotton twill", "woven fabric"), (
            ("a wide brim", "a narrow brim"),
        ), "Accessories", None, "accessories", "plain"),
        Style("Cap", "cap", _mods("Cotton|cotton|cotton twill", "Baseball|baseball",
                                  "Corduroy|corduroy|cotton corduroy"), ("cotton twill",), (
            ("a peak", "a curved peak"), ("an adjustable strap at the back",),
        ), "Accessories", None, "accessories", "plain"),
    )),
    ProductType("Bag", 66, "Accessories", 1.2, {L: 0.7, D: 0.15, M: 0.1, K: 0.05}, (14.99, 99.99), (
        Style("Bag", "bag", _mods("Shoulder|shoulder", "Tote|tote", "Crossbody|crossbody",
                                  "Small Shoulder|small shoulder", "Quilted|quilted"),
              ("faux leather", "canvas", "woven fabric"), (
            ("one main compartment with a zip", "a magnetic fastener"),
            ("an adjustable shoulder strap", "two handles", "a detachable shoulder strap"),
            ("an inner pocket",),
        ), "Accessories", WOMEN_KIDS, "accessories", "plain", extras=("Lined.",)),
        Style("Bag", "bag", _mods("Bum|bum", "Canvas|canvas|canvas"), ("nylon", "canvas"), (
            ("one main compartment with a zip",), ("an adjustable strap",),
        ), "Accessories", None, "accessories", "plain"),
        Style("Backpack", "backpack", _mods("", "Canvas|canvas|canvas", "Small|small"), ("nylon", "canvas"), (
            ("a zip at the top",), ("padded, adjustable shoulder straps",), ("a front pocket",),
        ), "Accessories", None, "accessories", "plain"),
    )),
    ProductType("Swimwear bottom", 59, "Swimwear", 1.2, {L: 0.6, M: 0.2, K: 0.2}, (9.99, 29.99), (
        Style("Bikini Bottoms", "bikini bottoms", _mods("", "Brazilian|Brazilian", "High Waist|high-waisted",
                                                        "Tie-tie|tie-tie", "Thong|thong"),
              ("recycled polyamide", "textured fabric"), (
            ("a low waist", "a high waist", "ties at the sides"), ("a lined gusset",), ("a fully lined front",),
        ), "Swimwear", frozenset({L}), graphics="default"),
        Style("Bikini Bottoms", "bikini bottoms", _mods("", "Frill-trimmed|frill-trimmed"), ("recycled polyamide",), (
            ("a lined front",), ("UPF 50 sun protection",),
        ), "Swimwear", KIDS, graphics="print"),
        Style("Swim Shorts", "swim shorts", _mods("", "Patterned|patterned"),
              ("quick-drying woven fabric", "woven fabric"), (
            ("an elasticated drawstring waist",), ("side pockets and a back pocket",), ("an inner mesh brief",),
        ), "Swimwear", MEN_KIDS, graphics="default"),
    )),
    ProductType("Bikini top", 298, "Swimwear", 0.8, {L: 0.8, K: 0.2}, (14.99, 29.99), (
        Style("Bikini Top", "bikini top", _mods("Padded|padded", "Triangle|triangle", "Bandeau|bandeau",
                                                "Underwired|underwired", "Push-up|push-up"),
              ("recycled polyamide", "textured fabric"), (
            ("moulded, padded cups", "removable inserts", "underwired cups"),
            ("adjustable shoulder straps", "narrow ties at the neck and back"), ("a fastening at the back",),
        ), "Swimwear", frozenset({L})),
        Style("Bikini Top", "bikini top", _mods("", "Frill-trimmed|frill-trimmed"), ("recycled polyamide",), (
            ("a lined front",), ("narrow ties at the neck and back",),
        ), "Swimwear", KIDS, graphics="print"),
    )),
    ProductType("Jumpsuit/Playsuit", 62, "Garment Full body", 1.1, {L: 0.5, D: 0.2, K: 0.3}, (24.99, 69.99), (
        Style("Jumpsuit", "jumpsuit", _mods("", "Denim|denim|washed denim", "Wide-leg|wide-leg",
                                            "Sleeveless|sleeveless", "Utility|utility"),
              ("woven fabric", "viscose", "cotton twill"), (
            ("a V-neck", "a collar", "narrow adjustable shoulder straps"),
            ("a tie belt at the waist", "an elasticated waist"), ("side pockets",),
        ), "Dresses Ladies", None),
        Style("Playsuit", "playsuit", _mods("", "Linen-blend|linen-blend|a linen blend", "Wrap|wrap",
                                            "Smocked|smocked"), ("woven fabric", "viscose", "crinkled cotton"), (
            ("a V-neck", "a square neckline"), ("short sleeves", "narrow shoulder straps"),
            ("an elasticated waist",),
        ), "Dresses Ladies", None),
    )),
    ProductType("Blazer", 267, "Garment Upper body", 1.05, {L: 0.6, D: 0.1, M: 0.3}, (49.99, 149.99), (
        Style("Blazer", "blazer", _mods("Oversized|oversized", "Double-breasted|double-breasted", "Slim Fit|slim-fit",
                                        "Fitted|fitted", "Linen|linen|a linen blend", "Regular Fit|regular-fit",
                                        "Single-breasted|single-breasted"),
              ("woven fabric", "a wool blend", "stretch twill"), (
            ("notch lapels", "peak lapels"), ("a single-button fastening", "buttons at the front"),
            ("welt pockets", "flap front pockets"), ("a single back vent",),
        ), "Dressed", None, "tailoring", "plain", extras=("Lined.",)),
    )),
    ProductType("Coat", 264, "Garment Upper body", 0.9, {L: 0.5, D: 0.1, M: 0.25, K: 0.15}, (59.99, 299.99), (
        Style("Coat", "coat", _mods("Wool-blend|wool-blend|felted fabric containing some wool", "Trench|trench",
                                    "Teddy|teddy|faux shearling", "Car|car", "Double-breasted|double-breasted",
                                    "Oversized|oversized", "Padded|padded", "Long|long"),
              ("woven fabric", "cotton twill", "felted fabric"), (
            ("notch lapels", "a collar"), ("buttons down the front", "a concealed button placket",
                                           "a tie belt at the waist"),
            ("welt front pockets", "front pockets"),
        ), "Outdoor", None, "tailoring", "plain", extras=("Lined.",)),
        Style("Parka", "parka", _mods("", "Padded|padded"), ("water-repellent cotton-blend twill", "woven fabric"), (
            ("a lined hood",), ("a zip and wind flap with press-studs",), ("flap front pockets",),
        ), "Outdoor", None, "tailoring", "plain", extras=("Padded lining.",)),
    )),
    ProductType("Boots", 87, "Shoes", 0.9, {L: 0.55, M: 0.25, K: 0.2}, (39.99, 149.99), (
        Style("Boots", "boots", _mods("Chelsea|Chelsea", "Ankle|ankle", "Chunky|chunky", "Knee-high|knee-high",
                                      "Heeled|heeled", "Lace-up|lace-up"), ("faux leather", "suede", "faux suede"), (
            ("elastic gores in the sides", "a zip in one side", "lacing at the front"), ("a loop at the back",),
            ("fabric linings and insoles",), ("chunky, patterned soles", "block heels", "rubber soles"),
        ), "Shoes", WOMEN, "tailoring", "plain"),
        Style("Boots", "boots", _mods("Chelsea|Chelsea", "Lace-up|lace-up", "Warm-lined|warm-lined"),
              ("faux leather", "leather", "suede"), (
            ("elastic gores in the sides", "lacing at the front"), ("a loop at the back",), ("rubber soles",),
        ), "Shoes", MEN_KIDS, "tailoring", "plain"),
    )),
    ProductType("Sandals", 88, "Shoes", 0.5, {L: 0.6, M: 0.1, K: 0.3}, (14.99, 69.99), (
        Style("Sandals", "sandals", _mods("Strappy|strappy", "Slide|slide", "Platform|platform", "Heeled|heeled",
                                          "Leather|leather|leather"), ("faux leather", "leather"), (
            ("narrow straps", "wide straps over the foot", "an adjustable ankle strap with a buckle"),
            ("a padded footbed",), ("rubber soles", "flat soles", "block heels"),
        ), "Shoes", WOMEN, "accessories", "plain"),
        Style("Sandals", "sandals", _mods("", "Slide|slide", "Hook-and-loop|hook-and-loop"),
              ("rubber", "faux leather"), (
            ("wide straps over the foot", "hook-and-loop fastenings"), ("rubber soles",),
        ), "Shoes", MEN_KIDS, "accessories", "plain"),
    )),
    ProductType("Scarf", 72, "Accessories", 0.9, {L: 0.65, D: 0.1, M: 0.15, K: 0.1}, (12.99, 39.99), (
        Style("Scarf", "scarf", _mods("Wool-blend|wool-blend|a soft wool blend", "Rib-knit|rib-knit",
                                      "Satin|satin|satin", "Chiffon|chiffon|chiffon", "Checked|checked",
                                      "Jacquard-knit|jacquard-knit"), ("a soft knit", "woven fabric"), (
            ("fringing at the short ends", "raw edges"),
        ), "Accessories", None, "accessories", "default"),
    )),
    ProductType("Pyjama set", 308, "Nightwear", 0.9, {L: 0.45, M: 0.15, K: 0.4}, (19.99, 49.99), (
        Style("Pyjamas", "pyjamas", _mods("", "Jersey|jersey|cotton jersey", "Satin|satin|satin",
                                          "Flannel|flannel|cotton flannel", "Printed|printed"), ("cotton jersey",), (
            ("a top with long sleeves and bottoms with an elasticated waist",
             "a short-sleeved top and shorts with an elasticated waist"),
        ), "Under-, Nightwear", None, graphics="print"),
    )),
    ProductType("Garment Set", 270, "Garment Full body", 1.2, {K: 1.0}, (14.99, 39.99), (
        Style("Set", "set", _mods("2-piece|2-piece", "Cotton|cotton", "Jersey|jersey", "Printed|printed",
                                  "Knitted|knitted|a soft knit"), ("soft cotton jersey", "organic cotton jersey"), (
            ("a top with press-studs on one shoulder", "a long-sleeved top"),
            ("leggings with an elasticated waist", "trousers with an elasticated waist",
             "shorts with an elasticated waist"),
        ), "Jersey Fancy", None, graphics="print"),
    )),
    ProductType("Earring", 73, "Accessories", 1.1, {L: 0.6, D: 0.4}, (7.99, 24.99), (
        Style("Earrings", "earrings", _mods("Hoop|hoop", "Drop|drop", "Stud|stud", "3-pack|3-pack",
                                            "Pearl|pearl|metal and faux pearls"), ("metal",), (
            ("a hinged fastening", "a post fastening"),
        ), "Accessories", None, "jewellery", "metal"),
    )),
    ProductType("Belt", 67, "Accessories", 0.5, {L: 0.5, D: 0.2, M: 0.3}, (9.99, 39.99), (
        Style("Belt", "belt", _mods("Leather|leather|leather", "Faux Leather|faux leather|faux leather",
                                    "Waist|waist", "Canvas|canvas|canvas"), ("faux leather", "leather"), (
            ("a metal buckle", "a covered buckle"),
        ), "Accessories", None, "tailoring", "plain"),
    )),
    ProductType("Sunglasses", 89, "Accessories", 0.5, {L: 0.6, D: 0.2, M: 0.2}, (9.99, 24.99), (
        Style("Sunglasses", "sunglasses", _mods("", "Cat-eye|cat-eye", "Round|round", "Oversized|oversized",
                                                "Aviator|aviator|metal"), ("plastic",), (
            ("UV-protective, tinted lenses",),
        ), "Accessories", None, "accessories", "plain"),
    )),
)  # fmt: skip
PRODUCT_TYPES_BY_NAME: Mapping[str, ProductType] = {product_type.name: product_type for product_type in PRODUCT_TYPES}

# Style words a user types -> the one product type whose articles carry them in their names
# (every article of that style does; no article of another type does).
STYLE_TERMS: Mapping[str, str] = {
    "jeans": "Trousers",
    "chinos": "Trousers",
    "joggers": "Trousers",
    "jumper": "Sweater",
    "trainers": "Sneakers",
    "beanie": "Hat/beanie",
    "parka": "Coat",
    "pyjamas": "Pyjama set",
}

# Model names H&M gives many Ladieswear and Divided products ("Tilda Wrap Dress"); none is a
# colour or garment word.
MODEL_NAMES: tuple[str, ...] = (
    "Tilda", "Luna", "Ellie", "Mia", "Nora", "Ava", "Isla", "Freya", "Alva", "Ebba", "Ida", "Wilma", "Alma", "Elsa",
    "Stella", "Vera", "Molly", "Ines", "Lea", "Maja", "Saga", "Iris", "Nova", "Clara", "Elin", "Tove", "Signe",
    "Linnea", "Agnes", "Astrid", "Hedda", "Juni", "Selma", "Sigrid", "Tyra", "Frida", "Edith", "Greta", "Hanna", "Thea",
)  # fmt: skip

# Departments and sections, from (index_code, garment group).
_GARMENT_LABELS: Mapping[str, str] = {
    "Jersey Basic": "Jersey Basic",
    "Knitwear": "Knitwear",
    "Jersey Fancy": "Jersey",
    "Woven/Jersey/Knitted mix Baby": "Essentials",
    "Outdoor": "Outdoor",
    "Dressed": "Tailoring",
    "Trousers": "Trouser",
    "Blouses": "Blouse",
    "Shorts": "Shorts",
    "Shirts": "Shirt",
    "Dresses Ladies": "Dress",
    "Skirts": "Skirt",
    "Trousers Denim": "Denim",
    "Under-, Nightwear": "Underwear & Nightwear",
    "Swimwear": "Swimwear",
    "Accessories": "Accessories",
    "Shoes": "Shoes",
    "Socks and Tights": "Socks & Tights",
    "Dresses/Skirts girls": "Dresses & Skirts",
}
_DEPARTMENT_PREFIX: Mapping[str, str] = {
    "A": "", "B": "", "C": "", "D": "Divided ", "F": "Men ", "G": "Baby ", "H": "Kids ", "I": "Young ", "J": "Kids ",
    "S": "Sport ",
}  # fmt: skip
# index_code -> (default section, {garment group: section})
_SECTIONS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "A": ("Womens Everyday Collection", {
        "Jersey Basic": "Womens Everyday Basics", "Dressed": "Womens Tailoring", "Blouses": "Womens Tailoring",
        "Trousers Denim": "Ladies Denim", "Jersey Fancy": "Womens Casual",
    }),
    "B": ("Womens Lingerie", {
        "Socks and Tights": "Womens Nightwear, Socks & Tights", "Swimwear": "Womens Swimwear, beachwear",
    }),
    "C": ("Womens Small accessories", {"Shoes": "Womens Shoes"}),
    "D": ("Divided Collection", {
        "Jersey Basic": "Divided Basics", "Accessories": "Divided Accessories", "Shoes": "Divided Accessories",
        "Trousers Denim": "Divided Selected",
    }),
    "F": ("Contemporary Casual", {
        "Dressed": "Men Suits & Tailoring", "Shirts": "Contemporary Smart", "Jersey Fancy": "Contemporary Street",
        "Under-, Nightwear": "Men Underwear", "Socks and Tights": "Men Underwear", "Swimwear": "Men Underwear",
        "Outdoor": "Mens Outerwear", "Accessories": "Men Accessories", "Shoes": "Men Shoes",
        "Trousers Denim": "Denim Men",
    }),
    "G": ("Baby Essentials & Complements", {}),
    "H": ("Kids Girl & Boy", {"Outdoor": "Kids Outerwear"}),
    "I": ("Young Girl & Boy", {"Outdoor": "Kids Outerwear"}),
    "J": ("Kids Accessories, Swimwear & Shoes", {}),
    "S": ("H&M Sport", {}),
}  # fmt: skip


def _section_numbers() -> dict[str, int]:
    names: list[str] = []
    for default, overrides in _SECTIONS.values():
        for name in (default, *overrides.values()):
            if name not in names:
                names.append(name)
    return {name: 2 + 3 * position for position, name in enumerate(names)}


SECTIONS: Mapping[str, int] = _section_numbers()  # section_name -> section_no
_INDEX_POSITION = {code: position for position, code in enumerate(INDEXES)}
_GARMENT_POSITION = {name: position for position, name in enumerate(GARMENT_GROUPS)}


def department(index_code: str, garment_group: str) -> tuple[int, str]:
    """(department_no, department_name): one department per index and garment group, like "Men Denim"."""
    number = 1000 + 700 * _INDEX_POSITION[index_code] + 31 * _GARMENT_POSITION[garment_group] + 7
    return number, _DEPARTMENT_PREFIX[index_code] + _GARMENT_LABELS[garment_group]


def section(index_code: str, garment_group: str) -> tuple[int, str]:
    """(section_no, section_name) of the department for this index and garment group."""
    default, overrides = _SECTIONS[index_code]
    name = overrides.get(garment_group, default)
    return SECTIONS[name], name
