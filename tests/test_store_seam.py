"""The store's seam: callers see the `OfferStore` protocol; only cumpair/index/ opens its files."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cumpair.index import (
    OfferRecord,
    OfferStore,
    ProductStore,
    SpaceSpec,
    StoreOptions,
    UnknownSpaceError,
    is_store_file,
    recorded_spaces,
    store_exists,
    vector_id,
)
from cumpair.search.store_scan import find_by_url, first_vectors, scan_offers, space_specs

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cumpair", "cumpair_scraper", "captcha_server")
SPACES = {"image": SpaceSpec(4, "test-image", "1"), "text": SpaceSpec(3, "test-text", "1")}
PROTOCOL = {name for name in dir(OfferStore) if not name.startswith("_")} | {"readonly"}


def _store_file_uses(path: Path) -> list[str]:
    """Where a module names the store's database or imports the helpers that open it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "meta.sqlite" in node.value:
                found.append(f"line {node.lineno}: mentions meta.sqlite")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module.startswith(("cumpair.index.metadata", "cumpair.index.store.")):
                found.append(f"line {node.lineno}: imports {node.module}")
            elif node.module == "cumpair.index" and "metadata" in names:
                found.append(f"line {node.lineno}: imports cumpair.index.metadata")
            elif node.module == "cumpair.index.store" and "DB_NAME" in names:
                found.append(f"line {node.lineno}: imports the store's DB_NAME")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cumpair.index.metadata"):
                    found.append(f"line {node.lineno}: imports {alias.name}")
    return found


def test_no_module_outside_the_index_package_opens_the_store_database():
    index = ROOT / "cumpair" / "index"
    offenders = {
        str(path.relative_to(ROOT)): uses
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if index not in path.parents and (uses := _store_file_uses(path))
    }
    assert offenders == {}


def test_the_guard_sees_each_way_of_reaching_the_database(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from cumpair.index import metadata\nfrom cumpair.index.store import DB_NAME\n"
        "import cumpair.index.metadata\nfrom cumpair.index.store.base import DB_NAME\n"
        "PATH = 'index_data/meta.sqlite'\n"
    )
    assert len(_store_file_uses(module)) == 5


class _OnlyProtocol:
    """A store seen through `OfferStore` alone: anything else raises AttributeError."""

    def __init__(self, store: ProductStore) -> None:
        self._store = store

    def __getattr__(self, name: str):
        if name not in PROTOCOL:
            raise AttributeError(f"{name} is not part of OfferStore")
        return getattr(self._store, name)


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(3)
    with ProductStore.open(tmp_path / "s", SPACES, StoreOptions(duplicate_threshold=None)) as s:
        for i in range(5):
            record = OfferRecord(shop="a", url=f"http://a/{i % 3}/{i}", price=Decimal(i))
            vectors = {"image": rng.standard_normal((2, 4))}
            if i % 2 == 0:
                vectors["text"] = rng.standard_normal(3)
            s.upsert(record, vectors)
        s.upsert(OfferRecord(shop="b", url="http://a/0/0"))
        yield s


def test_product_store_is_an_offer_store(store):
    assert isinstance(store, OfferStore)


def test_scans_page_through_offers_and_read_vectors_by_offer(store):
    pages = list(store.iter_offers(batch=2))
    assert [[r.id for r in page] for page in pages] == [[1, 2], [3, 4], [5, 6]]
    assert store.offers_with_url("http://a/0/0") == [1, 6]
    assert store.spaces() == SPACES
    firsts = store.offer_vectors("image", [5, 1, 6, 99])
    assert sorted(firsts) == [1, 5]
    by_scan = {
        int(v): row for ids, m in store.iter_vectors("image") for v, row in zip(ids, m, strict=True)
    }
    assert np.array_equal(firsts[5], by_scan[vector_id(5, 0)])
    assert np.array_equal(store.offer_vectors("image", [5], ordinal=1)[5], by_scan[vector_id(5, 1)])
    assert sorted(store.offer_vectors("text", range(1, 7))) == [1, 3, 5]
    with pytest.raises(UnknownSpaceError):
        store.offer_vectors("audio", [1])
    with pytest.raises(ValueError):
        next(store.iter_offers(batch=0))


def test_the_regroup_scans_need_nothing_but_the_protocol(store):
    seen = _OnlyProtocol(store)
    assert [r.id for r in scan_offers(seen)] == [1, 2, 3, 4, 5, 6]
    assert find_by_url(seen, "http://a/1/1") == [2]
    assert space_specs(seen) == SPACES
    every, some = first_vectors(seen), first_vectors(seen, [3, 6])
    assert sorted(every["image"]) == [1, 2, 3, 4, 5] and sorted(every["text"]) == [1, 3, 5]
    assert sorted(some["image"]) == [3] and sorted(some["text"]) == [3]
    assert np.allclose(some["image"][3], every["image"][3])
    assert np.isclose(np.linalg.norm(every["image"][2]), 1.0)


def test_directory_questions_are_answered_without_opening_the_store(tmp_path, store):
    assert store_exists(store.path) and not store_exists(tmp_path / "none")
    assert recorded_spaces(store.path) == SPACES and recorded_spaces(tmp_path / "none") == {}
    owned = {p.name for p in store.path.iterdir() if is_store_file(p.name)}
    assert "meta.sqlite" in owned and "store.lock" in owned
    assert not is_store_file("images") and not is_store_file("models")
