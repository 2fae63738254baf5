"""The demo catalog looks real: every product's weight, size, materials, specs and price fit its
kind (no 1.6 kg flash drive drawing 1800 W, no cotton board game), and the same seed gives the
same catalog."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cumpair.demo.catalog import (
    CATEGORY_BY_SLUG,
    KIND_SUBJECTS,
    build_catalog,
    clipart_pool,
    picture_subject,
)

SPECS = ("power_w", "voltage_v", "storage_gb", "volume_ml")
TEXTILES = {"cotton", "polyester", "nylon", "wool"}


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(n_products=300, seed=7)


def test_every_product_has_the_facts_of_its_kind(catalog):
    for product in catalog.products:
        kind = CATEGORY_BY_SLUG[product.category].kind(product.name)
        low, high = kind.weight_g
        assert low - 25 <= product.weight_g <= high + 25, product  # rounded to 10 g or 50 g
        assert all(kind.size_mm[0] - 5 <= d <= kind.size_mm[1] for d in product.dimensions_mm)
        assert {m.name for m in product.materials} <= set(kind.materials), product
        for spec in SPECS:
            value, choices = getattr(product, spec), getattr(kind, spec)
            assert (value in choices) if choices else value is None, (product, spec)


def test_offer_prices_fit_the_kind(catalog):
    for offer in catalog.offers:
        if offer.rule is not None:  # priced by its comparison rule (a pack, 0.01, USD...)
            continue
        low, high = CATEGORY_BY_SLUG[offer.product.category].kind(offer.product.name).price
        assert Decimal(low) * Decimal("0.94") <= offer.price <= Decimal(high + 1) * Decimal("1.1")


def test_the_reported_contradictions_are_gone(catalog):
    by_name: dict[str, list] = {}
    for product in catalog.products:
        by_name.setdefault(product.name, []).append(product)
    drives = by_name["USB Flash Drive"]
    assert drives and all(p.weight_g <= 30 and p.power_w is None for p in drives)
    assert all(p.storage_gb is not None for p in drives)
    for name in ("Board Game", "Camping Lantern"):
        assert by_name[name]
        assert all(not {m.name for m in p.materials} & TEXTILES for p in by_name[name]), name


def test_the_same_seed_gives_the_same_catalog():
    first, again = build_catalog(n_products=40, seed=3), build_catalog(n_products=40, seed=3)
    assert first.products == again.products and first.offers == again.offers
    assert build_catalog(n_products=40, seed=4).products != first.products


def test_products_show_a_picture_of_their_kind_where_one_exists():
    catalog = build_catalog()
    named = frozenset().union(*KIND_SUBJECTS.values())
    for product in catalog.products:
        subject = picture_subject(Path(product.clipart))
        # never a picture of another kind's subject (a battery pack showing a telephone)
        assert subject not in named - KIND_SUBJECTS.get(product.name, frozenset()), product
    for kind, subjects in KIND_SUBJECTS.items():
        sold = [p for p in catalog.products if p.name == kind]
        pool = {picture_subject(Path(p)) for p in clipart_pool(sold[0].category)} if sold else set()
        if sold and pool & subjects:  # the first of its kind shows it (a saw, not shears)
            assert picture_subject(Path(sold[0].clipart)) in subjects, kind
