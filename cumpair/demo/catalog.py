"""The demo shops' catalog: true products and the offers four shops make for them.

Everything is generated from a seed, so the same seed gives the same products, offers, prices
and defects on every machine; tests and benchmarks use it as ground truth. Each category sells
kinds of product (`Kind`): a product's size, weight, price, materials and specs are drawn from
what fits its kind, so labels and pages read like a real shop's. Building renders no images (see
`images.py`), so a 100 000-product catalog builds in seconds.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from stdnum import ean

SHOPS: tuple[str, ...] = ("northwind", "bluepeak", "cornerstore", "nebula")
SHOP_HOSTS: dict[str, str] = {
    "northwind": "127.0.0.21",
    "bluepeak": "127.0.0.22",
    "cornerstore": "127.0.0.23",
    "nebula": "127.0.0.24",
}
DEFECT_KINDS: tuple[str, ...] = ("broken_jsonld", "missing_price", "bad_price", "bad_gtin")
# broken JSON-LD only makes sense where JSON-LD is the markup; nebula serves clean JSON only.
DEFECT_SHOPS: dict[str, tuple[str, ...]] = {
    "broken_jsonld": ("northwind",),
    "missing_price": ("northwind", "bluepeak", "cornerstore"),
    "bad_price": ("northwind", "bluepeak", "cornerstore"),
    "bad_gtin": ("northwind", "bluepeak", "cornerstore"),
}
PRICE_DEFECTS = frozenset({"missing_price", "bad_price"})
# Offers added to exercise the comparison rules of the ranking (`_rule_offers`), one each, in
# shops whose markup carries what the rule needs (nebula's pages need a browser: not there).
RULES: tuple[str, ...] = (
    "out_of_stock_cheapest",
    "refurbished",
    "other_currency",
    "free_shipping",
    "pack",
    "placeholder",
)
RULE_SHOPS: tuple[str, ...] = ("northwind", "bluepeak", "cornerstore")
CURRENCY_SHOPS = frozenset({"northwind", "bluepeak"})  # their markup states the currency
# The rate the demo's rate file (`cumpair/demo/rates.json`) gives: USD per EUR.
DEMO_USD_RATE = Decimal("1.08")
# Each shop's shipping rule as its config's [shipping] table states it (`cumpair_scraper/shops`):
# (flat rate, free from this price) in EUR; nebula states none (its shipping is unknown).
SHIPPING: dict[str, tuple[Decimal, Decimal]] = {
    "northwind": (Decimal("5.95"), Decimal("100")),
    "bluepeak": (Decimal("4.95"), Decimal("50")),
    "cornerstore": (Decimal("3.95"), Decimal("30")),
}
PACK_SIZE = 3
AVAILABILITIES: tuple[str, ...] = ("InStock", "OutOfStock", "PreOrder")
CLIPART_ROOT = Path(os.environ.get("CUMPAIR_CLIPART_DIR", "/usr/share/openclipart/png"))


class CatalogError(ValueError):
    """The catalog cannot be built as asked (bad arguments, clip-art not installed)."""


@dataclass(frozen=True)
class Material:
    name: str
    percent: int


@dataclass(frozen=True)
class Kind:
    """One kind of product and the facts that fit it: a flash drive weighs grams and draws no
    1800 W, a board game is cardboard, not cotton. Empty spec choices: the kind has no such spec.
    """

    name: str
    size_mm: tuple[int, int]
    weight_g: tuple[int, int]
    price: tuple[int, int]
    materials: tuple[str, ...]
    power_w: tuple[int, ...] = ()
    voltage_v: tuple[int, ...] = ()
    storage_gb: tuple[int, ...] = ()
    volume_ml: tuple[int, ...] = ()


@dataclass(frozen=True)
class Category:
    """A product category: where its pictures come from and the kinds of product it sells."""

    slug: str
    title: str
    clipart_dirs: tuple[str, ...]
    kinds: tuple[Kind, ...]
    brands: tuple[str, ...]

    def kind(self, name: str) -> Kind:
        return next(kind for kind in self.kinds if kind.name == name)


_TOOL = ("steel", "ABS plastic", "aluminium", "rubber")
_CASE = ("aluminium", "ABS plastic", "polycarbonate")
_GADGET = ("ABS plastic", "polycarbonate", "silicone")
CATEGORIES: tuple[Category, ...] = (
    Category(
        "power-tools",
        "Power Tools",
        ("tools",),
        (
            Kind("Cordless Drill", (60, 260), (1100, 2200), (49, 249), _TOOL,
                 power_w=(300, 400, 500, 650), voltage_v=(12, 18, 20)),
            Kind("Impact Driver", (60, 220), (900, 1800), (59, 229), _TOOL,
                 power_w=(180, 250, 300, 400), voltage_v=(12, 18, 20)),
            Kind("Angle Grinder", (80, 380), (1800, 2900), (39, 199), _TOOL,
                 power_w=(500, 650, 800, 1000), voltage_v=(18, 36)),
            Kind("Jigsaw", (80, 280), (1800, 2800), (49, 189), _TOOL,
                 power_w=(400, 500, 650, 800), voltage_v=(18, 20, 36)),
            Kind("Circular Saw", (150, 400), (2500, 4500), (79, 299), _TOOL,
                 power_w=(1200, 1400, 1600, 1800), voltage_v=(18, 36)),
            Kind("Rotary Hammer", (90, 420), (2500, 4500), (99, 349), _TOOL,
                 power_w=(800, 900, 1200), voltage_v=(18, 36)),
            Kind("Heat Gun", (70, 260), (500, 900), (25, 89), ("ABS plastic", "steel"),
                 power_w=(1600, 1800, 2000), voltage_v=(230,)),
            Kind("Orbital Sander", (100, 250), (1100, 1800), (39, 159), _TOOL,
                 power_w=(200, 250, 300, 350), voltage_v=(18, 20)),
        ),
        ("Acme", "Voltra", "Kestrel", "Ironbark"),
    ),
    Category(
        "computer-hardware",
        "Computer Hardware",
        ("computer/hardware", "computer/connectors", "computer/network"),
        (
            Kind("External SSD", (10, 120), (40, 150), (59, 399), _CASE,
                 storage_gb=(500, 1000, 2000, 4000)),
            Kind("USB Flash Drive", (5, 65), (10, 30), (8, 79),
                 ("aluminium", "ABS plastic", "zinc"), storage_gb=(32, 64, 128, 256, 512)),
            Kind("Portable Hard Drive", (15, 130), (150, 250), (49, 179), _CASE,
                 storage_gb=(1000, 2000, 4000, 5000)),
            Kind("Network Attached Storage", (100, 230), (1200, 2500), (199, 699),
                 ("aluminium", "steel", "ABS plastic"), power_w=(25, 40, 60),
                 storage_gb=(2000, 4000, 8000)),
            Kind("Memory Card", (5, 35), (10, 10), (9, 89), ("ABS plastic", "polycarbonate"),
                 storage_gb=(32, 64, 128, 256, 512)),
            Kind("Docking Station", (25, 220), (200, 600), (59, 249), _CASE,
                 power_w=(60, 85, 100, 135)),
        ),
        ("Norden", "Bytewise", "Corvid", "Helix"),
    ),
    Category(
        "electronics",
        "Electronics",
        ("electronics", "electronics/battery", "electronics/bulb", "office/telephone"),
        (
            Kind("Desk Lamp", (120, 450), (600, 1800), (19, 129), ("aluminium", "steel", "glass"),
                 power_w=(5, 8, 10, 12), voltage_v=(12, 230)),
            Kind("Battery Pack", (20, 160), (180, 450), (19, 89), ("ABS plastic", "aluminium"),
                 power_w=(18, 20, 25, 45, 65), voltage_v=(5,)),
            Kind("LED Bulb", (60, 120), (40, 80), (4, 19), ("glass", "aluminium", "polycarbonate"),
                 power_w=(5, 7, 9, 12), voltage_v=(12, 230)),
            Kind("Cordless Phone", (30, 190), (100, 250), (29, 99), _GADGET, voltage_v=(5,)),
            Kind("Travel Charger", (25, 80), (60, 200), (12, 59), _GADGET,
                 power_w=(20, 30, 45, 65), voltage_v=(5, 12)),
            Kind("Smart Plug", (35, 80), (60, 120), (9, 35), ("ABS plastic", "polycarbonate"),
                 power_w=(2300, 3680), voltage_v=(230,)),
        ),
        ("Lumio", "Voltra", "Sparrow", "Quanta"),
    ),
    Category(
        "office",
        "Office Supplies",
        ("office",),
        (
            Kind("Desk Organizer", (80, 350), (300, 1200), (9, 49),
                 ("bamboo", "steel", "polypropylene")),
            Kind("Stapler", (30, 180), (150, 500), (5, 29), ("steel", "ABS plastic")),
            Kind("Letter Tray", (60, 350), (300, 900), (7, 39),
                 ("polypropylene", "steel", "bamboo")),
            Kind("Hole Punch", (60, 300), (300, 1200), (6, 45), ("steel", "ABS plastic")),
            Kind("Document Folder", (5, 320), (50, 200), (3, 15),
                 ("polypropylene", "cardboard", "recycled paper")),
            Kind("Desk Calendar", (60, 300), (100, 400), (4, 19), ("recycled paper", "cardboard")),
            Kind("Pen Holder", (60, 120), (80, 300), (4, 25), ("bamboo", "steel", "polypropylene")),
        ),
        ("Papyra", "Stationix", "Norden", "Quillon"),
    ),
    Category(
        "kitchen",
        "Kitchen & Pantry",
        (
            "food",
            "food/beverages",
            "food/fruit",
            "food/vegetables",
            "food/dairy",
            "food/desserts",
            "food/breads_and_carbs",
            "containers",
        ),
        (
            Kind("Insulated Bottle", (70, 300), (250, 450), (15, 45),
                 ("stainless steel", "silicone"), volume_ml=(350, 500, 750, 1000)),
            Kind("Storage Jar", (90, 250), (300, 900), (6, 29), ("glass", "ceramic", "bamboo"),
                 volume_ml=(500, 750, 1000, 1500, 2000)),
            Kind("Lunch Box", (60, 250), (200, 500), (9, 39),
                 ("stainless steel", "polypropylene", "bamboo", "silicone"),
                 volume_ml=(750, 1000, 1200, 1500)),
            Kind("Travel Mug", (80, 220), (200, 400), (9, 35),
                 ("stainless steel", "ceramic", "silicone"), volume_ml=(300, 350, 450, 500)),
            Kind("Serving Bowl", (80, 320), (400, 1500), (12, 59), ("ceramic", "glass", "bamboo"),
                 volume_ml=(1000, 1500, 2000, 3000)),
            Kind("Snack Container", (50, 180), (90, 250), (5, 19),
                 ("silicone", "polypropylene", "glass"), volume_ml=(250, 350, 500)),
        ),
        ("Culina", "Harvest & Co", "Ferro", "Bellweather"),
    ),
    Category(
        "sports-leisure",
        "Sports & Leisure",
        (
            "recreation/sports",
            "recreation/toys",
            "recreation/music",
            "recreation/games",
            "tools/toys",
            "education",
        ),
        (
            Kind("Training Ball", (200, 240), (250, 450), (12, 49),
                 ("rubber", "polyurethane", "nylon")),
            Kind("Camping Lantern", (90, 260), (200, 700), (15, 69),
                 ("ABS plastic", "aluminium", "silicone"), power_w=(3, 5, 10)),
            Kind("Board Game", (50, 400), (600, 1500), (19, 69), ("cardboard", "paper", "wood")),
            Kind("Yoga Mat", (100, 900), (800, 2500), (19, 89), ("rubber", "cork", "polyurethane")),
            Kind("Practice Guitar", (90, 900), (1800, 3500), (79, 229), ("wood", "steel")),
            Kind("Jump Rope", (20, 300), (100, 300), (8, 29), ("nylon", "steel", "rubber")),
        ),
        ("Kestrel", "Trailhead", "Pinewood", "Solano"),
    ),
)  # fmt: skip
CATEGORY_BY_SLUG: dict[str, Category] = {category.slug: category for category in CATEGORIES}
# Names webcolors and the colour extractor know, so printed colours are checkable.
COLORS: tuple[str, ...] = (
    "black",
    "white",
    "silver",
    "gray",
    "red",
    "blue",
    "green",
    "orange",
    "yellow",
    "navy",
)


@dataclass(frozen=True)
class DemoProduct:
    """The true product behind the offers; its specs are what labels print."""

    product_id: str
    brand: str
    model: str
    gtin: str
    category: str
    name: str
    dimensions_mm: tuple[int, int, int]
    weight_g: int
    materials: tuple[Material, ...]
    colors: tuple[str, ...]
    clipart: str
    volume_ml: int | None = None
    storage_gb: int | None = None
    power_w: int | None = None
    voltage_v: int | None = None


@dataclass(frozen=True)
class DemoOffer:
    """One shop's listing of a product, worded, priced and marked up the shop's way.

    `gtin_printed` is the GTIN exactly as the shop prints it (None when the shop prints none:
    matching such offers needs images or titles); `defect` names a deliberately malformed page.
    """

    shop: str
    product: DemoProduct = field(repr=False)
    item_id: str
    sku: str
    title: str
    price: Decimal
    currency: str
    availability: str
    description: str
    url_path: str
    image_names: tuple[str, str]
    gtin_printed: str | None
    defect: str | None = None
    condition: str | None = None  # schema.org short name ("Refurbished") the markup states
    rule: str | None = None  # the comparison rule this offer exercises (`RULES`)

    @property
    def product_id(self) -> str:
        return self.product.product_id

    @property
    def photo_name(self) -> str:
        return self.image_names[0]

    @property
    def label_name(self) -> str:
        return self.image_names[1]

    def image_path(self, name: str) -> str:
        """The URL path its pages link the image `name` by: versioned, as image CDNs do
        (Shopify's ``?v=``, a checksum in the path elsewhere). The version is a digest of what
        the image is drawn from (shop, product, printed GTIN), so a changed photo is a new URL
        and every version may be served as fresh for a long time (`server.IMAGE_MAX_AGE_S`)."""
        drawn_from = repr((self.shop, self.product, self.gtin_printed, name)).encode()
        return f"/images/{name}?v={hashlib.sha256(drawn_from).hexdigest()[:12]}"

    @property
    def image_paths(self) -> list[str]:
        """`image_path` of its photo and its label, in that order."""
        return [self.image_path(name) for name in self.image_names]

    def to_json(self) -> dict:
        """The offer as one JSON-ready record (export format; `product_id` is the ground truth)."""
        printed_price = None if self.defect in ("missing_price", "bad_price") else str(self.price)
        return {
            "shop": self.shop,
            "product_id": self.product_id,
            "sku": self.sku,
            "title": self.title,
            "price": printed_price,
            "currency": self.currency,
            "availability": self.availability,
            "brand": self.product.brand,
            "model": self.product.model,
            "gtin": self.gtin_printed,
            "category": self.product.category,
            "description": self.description,
            "url": self.url_path,
            "images": self.image_paths,
            "defect": self.defect,
            "condition": self.condition,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class Catalog:
    """All products and offers of one seed, with the look-ups the server and tests need."""

    seed: int
    products: list[DemoProduct]
    offers: list[DemoOffer]

    @functools.cached_property
    def products_by_id(self) -> dict[str, DemoProduct]:
        return {product.product_id: product for product in self.products}

    @functools.cached_property
    def _by_shop(self) -> dict[str, list[DemoOffer]]:
        by_shop: dict[str, list[DemoOffer]] = {shop: [] for shop in SHOPS}
        for offer in self.offers:
            by_shop[offer.shop].append(offer)
        return by_shop

    @functools.cached_property
    def _by_item(self) -> dict[tuple[str, str], DemoOffer]:
        return {(offer.shop, offer.item_id): offer for offer in self.offers}

    @functools.cached_property
    def _by_image(self) -> dict[tuple[str, str], DemoOffer]:
        return {(o.shop, name): o for o in self.offers for name in o.image_names}

    def offers_by_shop(self, shop: str) -> list[DemoOffer]:
        """Offers of `shop` in catalog order (the order category pages list them)."""
        if shop not in SHOPS:
            raise KeyError(f"unknown shop {shop!r}; shops are {', '.join(SHOPS)}")
        return self._by_shop[shop]

    def offer(self, shop: str, item_id: str) -> DemoOffer | None:
        """The offer `shop` lists under its own id `item_id`, or None."""
        return self._by_item.get((shop, item_id))

    def offer_for_image(self, shop: str, name: str) -> DemoOffer | None:
        return self._by_image.get((shop, name))

    def offers_for_product(self, product_id: str) -> list[DemoOffer]:
        return [offer for offer in self.offers if offer.product_id == product_id]

    def category_offers(self, shop: str, slug: str) -> list[DemoOffer]:
        return [o for o in self.offers_by_shop(shop) if o.product.category == slug]

    def categories(self, shop: str) -> list[Category]:
        """Categories in which `shop` lists at least one offer, in catalog order."""
        used = {offer.product.category for offer in self.offers_by_shop(shop)}
        return [category for category in CATEGORIES if category.slug in used]

    def valid_offers(self, shop: str | None = None) -> list[DemoOffer]:
        """Offers whose pages are well formed: a crawler must yield each as a complete item."""
        offers = self.offers if shop is None else self.offers_by_shop(shop)
        return [offer for offer in offers if offer.defect is None]

    def expected_items(self, shop: str | None = None) -> list[DemoOffer]:
        """Offers a correct crawler yields as items: all but those with no usable price.

        broken_jsonld pages still show title and price in HTML and bad_gtin only nulls the
        GTIN, so those are items too; missing_price and bad_price pages must be dropped.
        """
        offers = self.offers if shop is None else self.offers_by_shop(shop)
        return [offer for offer in offers if offer.defect not in PRICE_DEFECTS]

    def rule_offer(self, rule: str) -> DemoOffer | None:
        """The offer added to exercise `rule` (one of `RULES`), or None in a catalog too small
        to hold a product it fits."""
        if rule not in RULES:
            raise KeyError(f"unknown rule {rule!r}; rules are {', '.join(RULES)}")
        return next((o for o in self.offers if o.rule == rule), None)

    def defective_offers(self, kind: str | None = None) -> list[DemoOffer]:
        if kind is not None and kind not in DEFECT_KINDS:
            raise KeyError(f"unknown defect {kind!r}; defects are {', '.join(DEFECT_KINDS)}")
        return [o for o in self.offers if o.defect and (kind is None or o.defect == kind)]


def _clipart_ok(path: Path) -> bool:
    """Keep pictures big and detailed enough to look like a product photo when framed."""
    from PIL import Image  # header only: no pixels are decoded here

    if "_bw" in path.stem or path.stat().st_size < 6000:
        return False  # black-and-white twins and near-empty icons
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except (OSError, Image.DecompressionBombError):
        return False
    return (
        min(width, height) >= 150
        and max(width, height) <= 1600
        and (max(width, height) / min(width, height) < 2.2)
    )


_ARTICLES = frozenset({"a", "an", "another", "the", "old", "new", "simple", "blue", "red", "green"})


def picture_subject(path: Path) -> str:
    """What a picture shows, from its file name: 'an_apple_01' and 'apple_bw' are both apple."""
    words = [w for w in path.stem.lower().replace("-", "_").split("_") if w.isalpha()]
    words = [w for w in words if w not in _ARTICLES] or words or [path.stem]
    return words[0].rstrip("s")


@functools.cache
def clipart_pool(slug: str) -> tuple[str, ...]:
    """Sorted clip-art paths usable for `slug` (each path in at most one category)."""
    subjects: set[str] = set()
    for category in CATEGORIES:
        files: list[str] = []
        for sub in category.clipart_dirs:
            directory = CLIPART_ROOT / sub
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.png")):
                # One picture per subject: two magnifiers would be two products that image
                # search cannot tell apart, which is not what the demo means to test.
                subject = picture_subject(path)
                if subject not in subjects and _clipart_ok(path):
                    files.append(str(path))
                    subjects.add(subject)
        if category.slug == slug:
            if not files:
                raise CatalogError(
                    f"no clip-art for category {slug!r} under {CLIPART_ROOT} "
                    "(install Debian's openclipart-png or set CUMPAIR_CLIPART_DIR)"
                )
            return tuple(files)
    raise KeyError(f"unknown category {slug!r}")


def _gtin(rng: random.Random, leading_zero: bool) -> str:
    body = ("0" if leading_zero else str(rng.randint(1, 9))) + f"{rng.randrange(10**11):011d}"
    return body + ean.calc_check_digit(body)


def _model(index: int, rng: random.Random) -> str:
    # Two letters then a number, unique per product index (the letter pair encodes the index).
    letters = "ABCDEFGHJKLMNPRSTVWXZ"
    high, low = divmod(index, 900)
    prefix = letters[(high // len(letters)) % len(letters)] + letters[high % len(letters)]
    if high >= len(letters) ** 2:
        prefix += str(high // len(letters) ** 2)
    suffix = rng.choice(("", "", "", "X", "S", "Pro"))
    return f"{prefix}-{100 + low}{suffix}"


def _make_product(index: int, rng: random.Random, pictures: dict[str, list[str]]) -> DemoProduct:
    category = CATEGORIES[index % len(CATEGORIES)]
    pool = pictures[category.slug]
    clipart = pool[(index // len(CATEGORIES)) % len(pool)]
    kind = rng.choice(category.kinds)
    low, high = kind.size_mm
    dims = sorted((rng.randint(low // 5, high // 5) * 5 for _ in range(3)), reverse=True)
    weight = rng.randint(*kind.weight_g)
    weight = round(weight, -1) if weight < 1000 else round(weight / 50) * 50
    names = rng.sample(kind.materials, rng.choice((1, 2, 2)))
    if len(names) == 1:
        materials: tuple[Material, ...] = (Material(names[0], 100),)
    else:
        share = rng.choice((60, 70, 75, 80, 90))
        materials = (Material(names[0], share), Material(names[1], 100 - share))
    colors = tuple(rng.sample(COLORS, rng.choice((1, 1, 2))))
    specs = {
        spec: rng.choice(choices)
        for spec in ("voltage_v", "power_w", "storage_gb", "volume_ml")
        if (choices := getattr(kind, spec))
    }
    name = kind.name
    return DemoProduct(
        product_id=f"P{index:06d}",
        brand=rng.choice(category.brands),
        model=_model(index, rng),
        gtin=_gtin(rng, leading_zero=rng.random() < 0.3),
        category=category.slug,
        name=name,
        dimensions_mm=(dims[0], dims[1], dims[2]),
        weight_g=weight,
        materials=materials,
        colors=colors,
        clipart=clipart,
        **specs,
    )


# Clip-art subjects (`picture_subject`) that show a kind of product: a circular saw should show
# a saw, not shears. Kinds missing here have no picture of their own in Debian's openclipart.
KIND_SUBJECTS: dict[str, frozenset[str]] = {
    "Cordless Drill": frozenset({"drill"}),
    "Circular Saw": frozenset({"saw"}),
    "Rotary Hammer": frozenset({"hammer"}),
    "Impact Driver": frozenset({"screwdriver"}),
    "USB Flash Drive": frozenset({"usb"}),
    "Docking Station": frozenset({"hub"}),
    "Battery Pack": frozenset({"battery"}),
    "LED Bulb": frozenset({"bulb", "lightbulb"}),
    "Cordless Phone": frozenset({"phone", "telephone", "telefono"}),
    "Stapler": frozenset({"stappler", "pinzatrice"}),
    "Pen Holder": frozenset({"pen", "pencil"}),
    "Document Folder": frozenset({"folder", "dossier"}),
    "Travel Mug": frozenset({"mug", "tazza", "teacup", "kubek", "cuppa"}),
    "Serving Bowl": frozenset({"bowl"}),
    "Training Ball": frozenset({"ball", "football", "soccer", "beachball", "handball", "volley"}),
    "Practice Guitar": frozenset({"guitar"}),
    "Board Game": frozenset({"dice"}),
}


def _pictures_that_fit(products: list[DemoProduct]) -> list[DemoProduct]:
    """Products whose kind has pictures of its own (`KIND_SUBJECTS`) get one, taken from the
    product that held it (which gets the picture given up) or from the unused rest of the
    pool; then a product showing another kind's subject gets an unused picture of no kind.
    Only pictures held by one product move (large catalogs reuse pictures; those stay). Draws
    nothing at random: the offers and prices built after are the same as before."""
    from dataclasses import replace

    holders: dict[str, list[int]] = defaultdict(list)
    by_category: dict[str, list[int]] = defaultdict(list)
    for n, product in enumerate(products):
        holders[product.clipart].append(n)
        by_category[product.category].append(n)
    named = frozenset().union(*KIND_SUBJECTS.values())
    out = list(products)
    for category in CATEGORIES:
        members = by_category.get(category.slug)
        if not members:
            continue
        pool = list(clipart_pool(category.slug))
        subject = {picture: picture_subject(Path(picture)) for picture in pool}
        for kind in (k.name for k in category.kinds if k.name in KIND_SUBJECTS):
            subjects = KIND_SUBJECTS[kind]
            wanting = [
                n
                for n in members
                if out[n].name == kind
                and subject[out[n].clipart] not in subjects
                and len(holders[out[n].clipart]) == 1
            ]
            free = [
                p
                for p in pool
                if subject[p] in subjects
                and len(holders[p]) <= 1
                and not any(out[h].name == kind for h in holders[p])
            ]
            for n, picture in zip(wanting, free, strict=False):
                mine = out[n].clipart
                for other in holders[picture]:  # the picture's holder takes this one
                    out[other] = replace(out[other], clipart=mine)
                holders[mine], holders[picture] = list(holders[picture]), [n]
                out[n] = replace(out[n], clipart=picture)
        # A picture of another kind's subject (a battery pack showing a telephone) gives way
        # to an unused picture that shows no kind at all.
        neutral = [p for p in pool if not holders[p] and subject[p] not in named]
        for n in members:
            own = KIND_SUBJECTS.get(out[n].name, frozenset())
            picture = out[n].clipart
            if neutral and subject[picture] in named - own and len(holders[picture]) == 1:
                replacement = neutral.pop(0)
                holders[picture], holders[replacement] = [], [n]
                out[n] = replace(out[n], clipart=replacement)
    return out


def key_spec(product: DemoProduct, spaced: bool = False) -> str:
    """The spec a shop puts in its title: voltage, capacity or colour."""
    unit_gap = " " if spaced else ""
    if product.voltage_v is not None:
        return f"{product.voltage_v}{unit_gap}V"
    if product.storage_gb is not None:
        return f"{product.storage_gb}{unit_gap}GB"
    if product.volume_ml is not None:
        return f"{product.volume_ml}{unit_gap}ml"
    return product.colors[0]


def _title(shop: str, p: DemoProduct) -> str:
    if shop == "northwind":
        return f"{p.brand.upper()} {p.model} {p.name} {key_spec(p)}"
    if shop == "bluepeak":
        return f"{p.name} {p.model} by {p.brand}, {key_spec(p, spaced=True)}"
    if shop == "cornerstore":
        return f"{p.brand} {p.name} ({p.model}) - {key_spec(p, spaced=True)}"
    return f"{p.brand} {p.name} {p.model}"


def _description(shop: str, p: DemoProduct) -> str:
    material = " and ".join(m.name for m in p.materials)
    color = " / ".join(p.colors)
    if shop == "northwind":
        return f"The {p.brand} {p.model} {p.name.lower()} in {color}, made of {material}."
    if shop == "bluepeak":
        return f"{p.name} by {p.brand}. Finish: {color}. Built from {material}."
    if shop == "cornerstore":
        return f"{p.brand} {p.model}: a dependable {p.name.lower()} ({material}, {color})."
    return f"{p.name} from {p.brand}, model {p.model}. Colour {color}; {material}."


def _price(base: Decimal, rng: random.Random) -> Decimal:
    value = base * Decimal(str(rng.uniform(0.95, 1.06)))
    if value >= 20:
        return Decimal(int(value)) + rng.choice((Decimal("0.99"), Decimal("0.49"), Decimal("0.00")))
    return value.quantize(Decimal("0.01"))


def _item_ids(shop: str, number: int) -> tuple[str, str, str]:
    """(item_id, sku, url path) for the shop's `number`-th listing."""
    if shop == "northwind":
        sku = f"NW-{100000 + number}"
        return sku, sku, f"/p/{sku}.html"
    if shop == "bluepeak":
        item = str(5000 + number)
        return item, f"BP{item}-{number % 7}", f"/products/{item}"
    if shop == "cornerstore":
        item = str(200 + number)
        return item, f"CS-{item}", f"/item.php?id={item}"
    item = f"n{number:05d}"
    return item, f"NEB-{number:05d}", f"/item/{item}"


def _printed_gtin(shop: str, product: DemoProduct, rng: random.Random) -> str | None:
    if rng.random() < 0.05:
        return None  # some shops print no GTIN: matching must use images and titles
    return _shop_gtin(shop, product)


def _shop_gtin(shop: str, product: DemoProduct) -> str:
    if shop == "bluepeak" and product.gtin.startswith("0"):
        return product.gtin[1:]  # UPC-A, as US-facing shops print it
    return product.gtin


def _offer(
    shop: str,
    product: DemoProduct,
    number: int,
    price: Decimal,
    availability: str,
    gtin_printed: str | None,
    rule: str | None = None,
) -> DemoOffer:
    """The shop's `number`-th listing, of `product`, in EUR."""
    item_id, sku, path = _item_ids(shop, number)
    extension = "jpg" if shop in ("northwind", "cornerstore") else "png"
    return DemoOffer(
        shop=shop,
        product=product,
        item_id=item_id,
        sku=sku,
        title=_title(shop, product),
        price=price,
        currency="EUR",
        availability=availability,
        description=_description(shop, product),
        url_path=path,
        image_names=(f"{item_id}-photo.{extension}", f"{item_id}-label.png"),
        gtin_printed=gtin_printed,
        rule=rule,
    )


def build_catalog(n_products: int = 80, seed: int = 7, defects_per_kind: int = 2) -> Catalog:
    """Generate `n_products` products and their 2-4 offers each, deterministically from `seed`.

    Products beyond the clip-art pool of a category reuse its pictures (large benchmark
    catalogs only; the default catalog draws every product from a different picture).
    """
    if not isinstance(n_products, int) or n_products < 1:
        raise CatalogError(f"n_products must be a positive integer, got {n_products!r}")
    if defects_per_kind < 0:
        raise CatalogError(f"defects_per_kind must be >= 0, got {defects_per_kind!r}")
    rng = random.Random(seed)
    pictures = {c.slug: list(clipart_pool(c.slug)) for c in CATEGORIES}
    for pool in pictures.values():
        rng.shuffle(pool)
    products = _pictures_that_fit([_make_product(i, rng, pictures) for i in range(n_products)])

    load = dict.fromkeys(SHOPS, 0)
    offers: list[DemoOffer] = []
    for product in products:
        category = CATEGORY_BY_SLUG[product.category]
        kind = category.kind(product.name)
        base = Decimal(rng.randint(*kind.price)) + Decimal("0.99")
        count = rng.choices((2, 3, 4), weights=(35, 40, 25))[0]
        # Least-loaded shops first (random tie-break) keeps every shop's share balanced.
        chosen = sorted(SHOPS, key=lambda shop: (load[shop], rng.random()))[:count]
        prices: set[Decimal] = set()
        for shop in sorted(chosen, key=SHOPS.index):
            load[shop] += 1
            price = _price(base, rng)
            while price in prices:  # shops never agree to the cent: prices must be comparable
                price += Decimal("0.50")
            prices.add(price)
            offers.append(
                _offer(
                    shop,
                    product,
                    load[shop],
                    price,
                    availability=rng.choices(AVAILABILITIES, weights=(80, 12, 8))[0],
                    gtin_printed=_printed_gtin(shop, product, rng),
                )
            )
    _place_defects(offers, rng, defects_per_kind)
    offers += _rule_offers(products, offers, load, seed)
    return Catalog(seed=seed, products=products, offers=offers)


def _rule_offers(
    products: list[DemoProduct], offers: list[DemoOffer], load: dict[str, int], seed: int
) -> list[DemoOffer]:
    """One more offer per comparison rule (`RULES`), each for another product and in a shop
    that does not sell it yet (a product has one offer per shop), drawn from a generator of its
    own so every offer before them stays as it was:

    - out_of_stock_cheapest: a euro under the cheapest offer, out of stock;
    - refurbished: "(Refurbished)" in the title and in the markup, at 70% of the cheapest;
    - other_currency: in USD, 50 cents under the cheapest at the demo's rate (`DEMO_USD_RATE`);
    - free_shipping: 2 EUR over the cheapest offer, in a shop (`SHIPPING`) that ships it free
      at that price, while every other offer whose shipping is known costs more in total: dearer
      by price, cheapest by total;
    - pack: a pack of `PACK_SIZE` of a kitchen product at 90% of the cheapest per piece;
    - placeholder: a price of 0.01.
    """
    from dataclasses import replace

    rng = random.Random(f"comparison rules {seed}")
    sold: dict[str, list[DemoOffer]] = defaultdict(list)
    for offer in offers:
        sold[offer.product_id].append(offer)
    used: set[str] = set()
    added: list[DemoOffer] = []

    def eligible(product: DemoProduct) -> bool:
        listed = sold[product.product_id]
        return (
            product.product_id not in used
            and len(listed) >= 2
            and all(o.defect is None for o in listed)
            and any(shop not in {o.shop for o in listed} for shop in RULE_SHOPS)
        )

    def free_shops(rule: str, listed: list[DemoOffer]) -> list[str]:
        shops = {o.shop for o in listed}
        free = [shop for shop in RULE_SHOPS if shop not in shops]
        return [s for s in free if s in CURRENCY_SHOPS] if rule == "other_currency" else free

    for rule in RULES:
        pool = [
            p
            for p in products
            if eligible(p)
            and _fits(rule, p, sold[p.product_id])
            and free_shops(rule, sold[p.product_id])
        ]
        if not pool:
            continue
        product = rng.choice(pool)
        used.add(product.product_id)
        listed = sold[product.product_id]
        cheapest = min(o.price for o in listed)
        free = free_shops(rule, listed)
        shop = _free_shipping_shop(listed) if rule == "free_shipping" else rng.choice(free)
        load[shop] += 1
        gtin = _shop_gtin(shop, product)
        offer = _offer(shop, product, load[shop], cheapest, "InStock", gtin, rule=rule)
        cent = Decimal("0.01")
        if rule == "out_of_stock_cheapest":
            offer = replace(offer, price=cheapest - 1, availability="OutOfStock")
        elif rule == "refurbished":
            price = (cheapest * Decimal("0.7")).quantize(cent)
            title = f"{offer.title} (Refurbished)"
            offer = replace(offer, price=price, title=title, condition="Refurbished")
        elif rule == "other_currency":
            offer = replace(offer, price=((cheapest - cent * 50) * DEMO_USD_RATE).quantize(cent))
            offer = replace(offer, currency="USD")
        elif rule == "free_shipping":
            offer = replace(offer, price=cheapest + 2)
        elif rule == "pack":
            price = (cheapest * PACK_SIZE * Decimal("0.9")).quantize(cent)
            offer = replace(offer, price=price, title=f"{offer.title}, Pack of {PACK_SIZE}")
        else:
            offer = replace(offer, price=cent)
        added.append(offer)
    return added


def _shipping(offer: DemoOffer) -> Decimal | None:
    rule = SHIPPING.get(offer.shop)
    if rule is None:
        return None
    return Decimal(0) if offer.price >= rule[1] else rule[0]


def _free_shipping_shop(listed: list[DemoOffer]) -> str | None:
    """A shop not selling the product where 2 EUR over its cheapest offer ships free and costs
    less in total than every offer whose shipping is known; None when there is none."""
    price = min(o.price for o in listed) + 2
    if any(o.price + s <= price for o in listed if (s := _shipping(o)) is not None):
        return None
    shops = {o.shop for o in listed}
    return next((s for s in RULE_SHOPS if s not in shops and price >= SHIPPING[s][1]), None)


def _fits(rule: str, product: DemoProduct, listed: list[DemoOffer]) -> bool:
    """Whether `product` (sold as `listed`) can show `rule` (see `_rule_offers`)."""
    cheapest = min(o.price for o in listed)
    if rule == "out_of_stock_cheapest":
        return cheapest > 2
    if rule == "free_shipping":
        return _free_shipping_shop(listed) is not None
    if rule == "pack":
        return product.category == "kitchen"
    return True


def _place_defects(offers: list[DemoOffer], rng: random.Random, per_kind: int) -> None:
    """Mark `per_kind` offers per defect kind, in shops where that defect makes sense."""
    from dataclasses import replace

    taken: set[int] = set()
    for kind in DEFECT_KINDS:
        candidates = [
            i
            for i, offer in enumerate(offers)
            if offer.shop in DEFECT_SHOPS[kind]
            and i not in taken
            # a wrong check digit needs a printed EAN-13 to be wrong in
            and (kind != "bad_gtin" or len(offer.gtin_printed or "") == 13)
        ]
        if len(candidates) < per_kind:
            raise CatalogError(f"catalog too small for {per_kind} {kind} defects")
        for i in rng.sample(candidates, per_kind):
            taken.add(i)
            offer = offers[i]
            printed = offer.gtin_printed
            if kind == "bad_gtin" and printed:
                printed = printed[:-1] + str((int(printed[-1]) + 1) % 10)
            offers[i] = replace(offer, defect=kind, gtin_printed=printed)


def iter_export_records(catalog: Catalog) -> Iterator[dict]:
    """One JSON-ready record per offer, in catalog order (see `DemoOffer.to_json`)."""
    for offer in catalog.offers:
        yield offer.to_json()


def offers_per_product(catalog: Catalog) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for offer in catalog.offers:
        counts[offer.product_id] += 1
    return dict(counts)
