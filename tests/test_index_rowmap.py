"""Re-ranking from the vector log through the in-memory row map: no SQLite per search, the map
follows writes, removals and compaction, only the picks' CRCs are checked (a damaged pick gives
way to the next candidate), re-ranking works in bounded slices, and filtered exact searches
never return a row they could not read."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import faiss
import numpy as np
import pytest

from cumpair.index import OfferRecord, ProductStore, SearchFilters, SpaceSpec, StoreOptions, ivf
from cumpair.index import vector_id as vid
from cumpair.index.records import ORDINAL_BITS
from cumpair.index.store import searching
from cumpair.index.store.rowmap import RowMap
from cumpair.index.vectorlog import HEADER_BYTES, VectorLog
from tests import vector_fixtures

DIM = 32
SPACES = {"image": SpaceSpec(DIM, "test-image", "1")}
ROW_BYTES = 8 + DIM * 4 + 4
OPTIONS = StoreOptions(upgrade_threshold=3000, background_upgrade=False, duplicate_threshold=None)
clustered = partial(vector_fixtures.clustered, dim=DIM, clusters=40)


def items(vectors: np.ndarray, start: int = 0, shop: str = "northwind"):
    return [
        (OfferRecord(shop, f"http://{shop}/{start + i}", price=Decimal(1)), {"image": v})
        for i, v in enumerate(vectors)
    ]


def damage(path, row: int, value: int = 5) -> None:
    """Garble one value of a log row to a huge float (its CRC no longer matches)."""
    with open(path / "vectors.image.e0001.vlog", "r+b") as fh:
        fh.seek(HEADER_BYTES + row * ROW_BYTES + 8 + 4 * value)
        fh.write(b"\x7f\x7f\x7f\x7f")


@pytest.fixture
def upgraded(tmp_path):
    data = clustered(3200, seed=11)
    with ProductStore.open(tmp_path / "s", SPACES, OPTIONS) as store:
        store.upsert_many(items(data))
        assert store.health()["spaces"]["image"]["index"]["fast_scan"]
        yield store, data


def test_searches_re_rank_without_asking_sqlite_for_candidate_rows(upgraded):
    store, data = upgraded
    store.search("image", data[:5], 10)  # builds the row map
    statements: list[str] = []
    store._read_conn().set_trace_callback(statements.append)
    for query in data[100:120]:
        assert store.search("image", query, 10)[0][0].offer_id > 0
    assert statements == []  # nothing changed: the map answers every candidate
    assert 0 < store.health()["spaces"]["image"]["row_map_bytes"] <= 8 * 3201


def test_the_row_map_follows_updates_removals_and_compaction(upgraded):
    store, data = upgraded
    moved = clustered(1, seed=99)[0]
    store.upsert(items([moved], start=10)[0][0], {"image": moved})  # offer 11, a new log row
    best = store.search("image", moved, 1)[0][0]
    assert (best.offer_id, best.score) == (11, pytest.approx(1.0, abs=1e-5))
    assert store.remove(21)
    assert all(h.offer_id != 21 for h in store.search("image", data[20], 10)[0])
    before = store._spaces["image"].rows.current.file
    store.compact()  # rows renumbered in a new file: the map is rebuilt on it
    hits = store.search("image", data[30], 10)[0]
    assert store._spaces["image"].rows.current.file != before
    assert hits[0].offer_id == 31 and all(h.offer_id != 21 for h in hits)
    for hit in hits:  # every re-ranked score is the true one of that offer
        truth = moved if hit.offer_id == 11 else data[hit.offer_id - 1]
        assert hit.score == pytest.approx(float(truth @ data[30]), abs=1e-4)


def test_a_damaged_pick_gives_way_to_the_next_candidate_and_is_noted(tmp_path):
    data = clustered(3200, seed=12)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        store.upsert_many(items(data))
        first = store.search("image", data[40], 10)[0]
        # offer 41's row (the query's own, its best hit), where the query is positive: the
        # garbled value scores it first, so the check of the picks finds it
        damage(path, 40, int(np.argmax(data[40])))
        hits = store.search("image", data[40], 10)[0]
        assert len(hits) == 10 and all(h.offer_id != 41 for h in hits)
        assert [h.offer_id for h in hits[:9]] == [h.offer_id for h in first[1:10]]
        assert store.health()["damage"]["damaged_vector_ids"] == {"image": [vid(41, 0)]}


def test_a_filtered_exact_search_never_returns_a_row_it_could_not_read(tmp_path):
    data = clustered(3203, seed=13)
    path = tmp_path / "s"
    with ProductStore.open(path, SPACES, OPTIONS) as store:
        store.upsert_many(items(data[:3200]))
        store.upsert_many(items(data[3200:], start=3200, shop="tiny"))  # offers 3201..3203
        damage(path, 3201)  # offer 3202
        hits = store.search("image", data[3200], 5, SearchFilters(shops=("tiny",)))[0]
        assert sorted(h.offer_id for h in hits) == [3201, 3203]


def test_row_map_keeps_first_and_further_vectors_and_moves_forward(tmp_path):
    log = VectorLog(tmp_path / "v.vlog", 4, writable=True, create=True)
    ids = np.array([vid(1, 0), vid(1, 2), vid(3, 0), vid(7, 1)], dtype=np.int64)
    rows = np.arange(4, dtype=np.int64)
    log.write(0, ids, np.eye(4, dtype=np.float32))
    row_map = RowMap.build("v.vlog", log, 5, ids, rows)
    asked = np.array([vid(3, 0), vid(1, 2), vid(2, 0), vid(99, 0), -1, vid(7, 1)])
    assert row_map.rows_of(asked).tolist() == [2, 1, -1, -1, -1, 3]
    # first vectors only (a re-rank's usual ask): the same answers, a negative offer unknown
    firsts = np.array([vid(3, 0), vid(1, 0), vid(2, 0), -(1 << ORDINAL_BITS)], dtype=np.int64)
    assert row_map.rows_of(firsts).tolist() == [2, 0, -1, -1]
    fast = row_map.rows_of(firsts[:3])  # every offer inside the map: the fast path
    assert fast.tolist() == [2, 0, -1] and fast.dtype == np.int64  # offer 2: never stored
    read = row_map.gather(asked)
    assert read.ok.tolist() == [True, True, False, False, False, True]
    assert np.array_equal(read.vectors[0], np.eye(4, dtype=np.float32)[2])
    assert not read.vectors[2:5].any()
    log.write(4, np.array([vid(1, 0)]), np.ones((1, 4), dtype=np.float32))  # offer 1 updated
    later = row_map.advanced(6, np.array([vid(1, 0), vid(7, 1)]), np.array([vid(1, 0)]), [4])
    assert later.rows_of(asked).tolist() == [2, 1, -1, -1, -1, -1]
    assert later.rows_of(np.array([vid(1, 0)])).tolist() == [4]
    assert row_map.rows_of(np.array([vid(1, 0)])).tolist() == [0]  # the old map is unchanged
    gone = later.advanced(9, np.array([vid(3, 0)]), [], [])  # offer 3 removed, inside the map
    assert gone.rows_of(np.array([vid(3, 0), vid(1, 0)])).tolist() == [-1, 4]
    assert gone.rows_of(np.array([vid(1, 0), vid(len(gone.first), 0)])).tolist() == [4, -1]
    wide = later.advanced(7, [], np.array([vid(5, 0)]), [2**33])  # past int32 rows
    assert wide.rows_of(np.array([vid(5, 0), vid(3, 0)])).tolist() == [2**33, 2]
    assert later.advanced(8, [], [], []).first is later.first  # nothing here changed


def test_new_offers_fill_the_maps_spare_room_and_older_maps_never_change(tmp_path):
    """A crawl's new offers cost the map what they add: written past the end of the arrays
    the older maps see (copied once, with room); a second map from the same parent copies."""
    log = VectorLog(tmp_path / "v.vlog", 4, writable=True, create=True)
    ids = np.array([vid(o, 0) for o in range(1, 101)] + [vid(50, 1)], dtype=np.int64)
    row_map = RowMap.build("v.vlog", log, 1, ids, np.arange(101))
    assert row_map.nbytes == 101 * 4 + 2 * 8  # a map built whole holds no room
    grown = row_map.advanced(2, [], np.array([vid(101, 0), vid(101, 1)]), [101, 102])
    added = np.array([vid(103, 0), vid(103, 1)])
    again = grown.advanced(3, added, added, [103, 104])  # as `changes_since`: the adds dropped
    assert again.first.base is grown.first.base and again.more_ids.base is grown.more_ids.base
    assert again.more_rows.base is grown.more_rows.base
    assert grown.nbytes == again.nbytes > row_map.nbytes  # the room, counted
    sibling = grown.advanced(3, [], np.array([vid(104, 0)]), [105])  # grown's room is taken
    assert sibling.first.base is not grown.first.base
    asked = np.array([vid(101, 0), vid(101, 1), vid(103, 0), vid(103, 1), vid(104, 0)])
    assert again.rows_of(asked).tolist() == [101, 102, 103, 104, -1]
    assert sibling.rows_of(asked).tolist() == [101, 102, -1, -1, 105]
    assert grown.rows_of(asked).tolist() == [101, 102, -1, -1, -1]
    assert row_map.rows_of(asked).tolist() == [-1] * 5
    moved = again.advanced(4, np.array([vid(2, 0)]), np.array([vid(2, 0)]), [106])  # a copy
    assert moved.first.base is not again.first.base
    assert moved.rows_of(np.array([vid(2, 0)])).tolist() == [106]
    assert again.rows_of(np.array([vid(2, 0)])).tolist() == [1]


def test_maps_brought_forward_from_any_map_answer_their_own_state_and_leave_older_ones(tmp_path):
    """Random new offers (some removed again), moves and removals, each brought forward as
    `changes_since` gives them from the newest map or from an older one (a sibling, which
    branches off: the newer maps' offers are not its own): every map made so far still answers
    exactly the rows it was made for, shared room or not."""
    log = VectorLog(tmp_path / "v.vlog", 4, writable=True, create=True)
    rng = np.random.default_rng(0)
    made: list[tuple[RowMap, dict[int, int]]] = [
        (RowMap.build("v.vlog", log, 0, np.empty(0), np.empty(0)), {})
    ]
    offers, row = 1, 0
    for seq in range(1, 120):
        parent, before = made[-1] if rng.random() < 0.8 else made[rng.integers(len(made))]
        state = dict(before)
        for _ in range(rng.integers(1, 4)):
            kind, held = rng.integers(3), sorted({k >> ORDINAL_BITS for k in state})
            offer = offers if kind == 0 or not held else int(rng.choice(held))
            offers += offer == offers
            for key in [k for k in state if k >> ORDINAL_BITS == offer]:
                del state[key]
            if kind < 2 and rng.random() < 0.9:  # a new offer or a move; else removed
                for ordinal in range(rng.integers(1, 4)):
                    state[vid(offer, ordinal)], row = row, row + 1
        changed = {k for k in before.keys() | state.keys() if before.get(k) != state.get(k)}
        add = np.array(sorted(k for k in changed if k in state), dtype=np.int64)
        gone = np.array(sorted(changed - state.keys()), dtype=np.int64)
        rows = [state[k] for k in add]
        made.append((parent.advanced(seq, np.concatenate([gone, add]), add, rows), dict(state)))
    asked = np.array(sorted({k for _, s in made for k in s} | {vid(offers, 0), vid(offers, 1)}))
    for row_map, held in made:
        assert row_map.rows_of(asked).tolist() == [held.get(int(k), -1) for k in asked]


def test_rerank_in_slices_gives_the_same_answer_with_bounded_reads(monkeypatch):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, DIM)).astype(np.float32)
    queries = vectors[:40] + 0.01
    candidates = np.stack([rng.permutation(500)[:50] for _ in range(40)]).astype(np.int64)
    candidates[0, 7] = -1
    asked: list[int] = []

    def lookup(ids):
        asked.append(len(ids))
        return np.where((ids >= 0)[:, None], vectors[np.maximum(ids, 0)], 0), ids >= 0

    whole = ivf.rerank(queries, candidates, lookup, 10)
    monkeypatch.setattr(ivf, "_RERANK_BYTES", 8 * 50 * DIM * 4)  # 8 queries a slice
    asked.clear()
    sliced = ivf.rerank(queries, candidates, lookup, 10)
    assert max(asked) == 8 * 50 and len(asked) == 5
    assert np.array_equal(whole[1], sliced[1]) and np.allclose(whole[0], sliced[0])
    exact = np.einsum("qd,qkd->qk", queries, vectors[np.maximum(candidates, 0)])
    exact[candidates < 0] = -np.inf
    best = np.take_along_axis(candidates, np.argsort(-exact, axis=1)[:, :10], axis=1)
    assert np.array_equal(sliced[1], best)


def test_hits_of_first_vectors_only_are_those_of_best_per_offer():
    scores = np.array([[0.9, 0.8, 0.5, -np.inf], [0.7, 0.6, 0.4, 0.3]], dtype=np.float32)
    ids = np.array([[vid(4, 0), vid(2, 0), vid(9, 0), -1], [vid(1, 0), vid(3, 0), -1, vid(5, 0)]])
    expected = [searching._best_per_offer(s, i, 3) for s, i in zip(scores, ids, strict=True)]
    assert searching._hit_lists(scores, ids, 3) == expected
    assert [h.offer_id for h in expected[1]] == [1, 3, 5]
    several = ids.copy()
    several[0, 1] = vid(4, 1)  # offer 4 twice: its best vector only
    assert [h.offer_id for h in searching._hit_lists(scores, several, 3)[0]] == [4, 9]
    full = np.array([[vid(1, 0), vid(3, 0), vid(6, 0), vid(5, 0)]])  # no gap, more than k
    assert searching._hit_lists(scores[1:], full, 3) == [
        searching._best_per_offer(scores[1], full[0], 3)
    ]


def test_exact_neighbours_agree_with_the_re_ranked_store_search(upgraded):
    store, data = upgraded
    _, truth = faiss.knn(data[:50], data, 10, metric=faiss.METRIC_INNER_PRODUCT)
    found = [[h.offer_id - 1 for h in row] for row in store.search("image", data[:50], 10)]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.9
