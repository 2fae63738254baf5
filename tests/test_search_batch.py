"""Concurrent searches joined into batched store searches (`cumpair.search.batching`), over a
real product store: a lone search runs at once, overlapping ones share one store search and
each gets its own rows, a bad query fails only its caller, and `cumpair serve` batches."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import numpy as np
import pytest

from cumpair.index import OfferRecord, ProductStore, SearchEffort, SpaceSpec, StoreOptions
from cumpair.index.records import InvalidVectorError
from cumpair.search.batching import BatchedSearches
from cumpair.search.products import ProductGroups
from cumpair.search.server import create_app
from cumpair.search.service import SearchService
from tests import vector_fixtures

DIM = 16


class GatedStore:
    """The real store, recording each search's query count; searches wait at a gate (slow
    searches in flight) until the test opens it."""

    def __init__(self, store: ProductStore) -> None:
        self.store = store
        self.calls: list[int] = []
        self.efforts: list[SearchEffort | None] = []  # each search's effort, as `calls`
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self.store, name)

    def search(self, space, queries, k=10, filters=None, effort=None):
        self.calls.append(len(np.atleast_2d(queries)))
        self.efforts.append(effort)
        assert self.gate.wait(10)
        return self.store.search(space, queries, k, filters, effort)


@pytest.fixture
def store(tmp_path):
    vectors = vector_fixtures.clustered(300, dim=DIM, clusters=10)
    options = StoreOptions(duplicate_threshold=None)
    with ProductStore.open(tmp_path / "s", {"image": SpaceSpec(DIM, "test")}, options) as opened:
        opened.upsert_many(
            [
                (OfferRecord("shop", f"http://shop/{i}", price=Decimal(1)), {"image": v})
                for i, v in enumerate(vectors)
            ]
        )
        yield opened


def _queries(n: int, seed: int = 5) -> np.ndarray:
    return vector_fixtures.clustered(n, dim=DIM, clusters=10, seed=seed)


def _wait_until(condition) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _overlapping(
    batched: BatchedSearches, gated: GatedStore, calls: list[tuple], leaders: int = 1
) -> list:
    """Run `calls` (args of `search`) in threads, the first `leaders` of them (one per key)
    started first and held at the gate until every other one waits in the batcher."""
    results: list = [None] * len(calls)

    def run(n: int) -> None:
        try:
            results[n] = batched.search(*calls[n])
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads[:leaders]:
        thread.start()
    _wait_until(lambda: len(gated.calls) == leaders)
    for thread in threads[leaders:]:
        thread.start()
    _wait_until(lambda: sum(len(w) for w in batched._waiting.values()) == len(calls) - leaders)
    gated.gate.set()
    for thread in threads:
        thread.join(10)
    return results


def test_a_lone_search_runs_at_once_and_answers_as_the_store_does(store):
    gated = GatedStore(store)
    gated.gate.set()
    batched = BatchedSearches(gated)
    queries = _queries(2)
    assert batched.search("image", queries, 5) == store.search("image", queries, 5)
    assert batched.search("image", queries[0], 5) == store.search("image", queries[0], 5)
    assert gated.calls == [2, 1]
    assert batched.stats.searches == 2 and batched.stats.batched_queries == 0
    assert batched.count("image") == 300  # everything else is the store's


def test_searches_arriving_while_one_runs_share_one_store_search_each_with_its_own_rows(store):
    gated = GatedStore(store)
    batched = BatchedSearches(gated)
    queries = _queries(7)
    calls = [("image", queries[n], 5) for n in range(5)] + [("image", queries[5:], 5)]
    results = _overlapping(batched, gated, calls)
    assert gated.calls == [1, 6]  # the first search, then one batch of everyone who waited
    for n in range(5):
        assert results[n] == store.search("image", queries[n], 5)
    assert results[5] == store.search("image", queries[5:], 5)
    assert batched.stats.searches == 2 and batched.stats.batched_queries == 6


def test_a_bad_query_in_a_batch_fails_only_its_own_caller(store):
    gated = GatedStore(store)
    batched = BatchedSearches(gated)
    queries = _queries(3)
    wrong = np.ones(DIM + 1, dtype=np.float32)
    calls = [("image", queries[n], 5) for n in range(3)]
    results = _overlapping(batched, gated, [*calls[:2], ("image", wrong, 5), calls[2]])
    assert isinstance(results[2], InvalidVectorError) and f"expected (n, {DIM})" in str(results[2])
    for n in (0, 1):
        assert results[n] == store.search("image", queries[n], 5)
    assert results[3] == store.search("image", queries[2], 5)


def test_only_searches_of_the_same_space_k_and_filters_share_a_batch(store):
    gated = GatedStore(store)
    batched = BatchedSearches(gated)
    queries = _queries(5)
    ks = [3, 7, 3, 3, 7]  # the first two lead (one of each k), the rest wait behind them
    calls = [("image", q, k) for q, k in zip(queries, ks, strict=True)]
    results = _overlapping(batched, gated, calls, leaders=2)
    assert gated.calls[:2] == [1, 1] and sorted(gated.calls[2:]) == [1, 2]
    for q, k, found in zip(queries, ks, results, strict=True):
        assert found == store.search("image", q, k)


def test_an_effort_reaches_the_store_and_only_searches_of_the_same_effort_share_a_batch(store):
    gated = GatedStore(store)
    batched = BatchedSearches(gated)
    bounded = SearchEffort(lists=1)
    queries = _queries(5)
    # the first two lead (one of each effort), the rest wait behind the one of their effort
    efforts = [None, bounded, None, bounded, bounded]
    calls = [("image", q, 3, None, e) for q, e in zip(queries, efforts, strict=True)]
    results = _overlapping(batched, gated, calls, leaders=2)
    assert gated.efforts[:2] == [None, bounded]
    assert sorted(zip(gated.efforts[2:], gated.calls[2:], strict=True), key=str) == [
        (None, 1),
        (bounded, 2),
    ]
    for q, e, found in zip(queries, efforts, results, strict=True):
        assert found == store.search("image", q, 3, effort=e)
    assert asyncio.run(batched.asearch("image", queries[0], 3, effort=bounded)) == results[0]
    assert gated.efforts[-1] == bounded


def test_max_batch_one_never_makes_a_search_wait(store):
    gated = GatedStore(store)
    batched = BatchedSearches(gated, max_batch=1)
    threads = [
        threading.Thread(target=batched.search, args=("image", _queries(1), 3)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    _wait_until(lambda: len(gated.calls) == 2)  # both in the store at once, neither waiting
    gated.gate.set()
    for thread in threads:
        thread.join(10)
    with pytest.raises(ValueError, match="max_batch"):
        BatchedSearches(store, max_batch=0)


@pytest.mark.parametrize("search_batch", [1, 8])
def test_serve_joins_the_searches_of_its_requests_unless_told_not_to(store, tmp_path, search_batch):
    groups = ProductGroups.open(tmp_path / "s")
    try:
        service = SearchService(store, groups)
        create_app(service, warm=False, search_batch=search_batch)
        batched = isinstance(service.store, BatchedSearches)
        assert batched == (search_batch > 1)
        if batched:
            assert service.store.store is store and service.store.max_batch == search_batch
            create_app(service, warm=False)  # a second app over the service: wrapped once
            assert service.store.store is store
    finally:
        groups.close()
