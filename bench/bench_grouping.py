"""Benchmark grouping cost per offer as the store grows, with a full regroup as the baseline.

A crawl groups each offer it touches twice: on arrival (`ProductGroups.assign`) and at its end
(the incremental regroup, `cumpair.ingest.stages.regroup_store(touched)`). Both should cost the
same per touched offer whatever the store's size. This measures them at each size in `--sizes`
(one run), beside a full regroup of the same state (the baseline: what every crawl's end did).

For each size N: a store of N demo-catalog offers (records as a crawl stores them; text vectors
synthetic, 384-d like MiniLM, clustered in families of similar products as title vectors are
(`offer_vectors`); IVF-PQ from `--upgrade-at` vectors on, as a store past its upgrade threshold
searches, re-trained as it grows) whose grouping is the catalog's own
products, as if earlier crawls had grouped it without a mistake (building it by regrouping would
cost more than everything measured). A later crawl then touches `--touched` of it (a share of N
below 1, else a count; half offers of new products, half price changes), each upserted and
assigned as the pipeline does, and the grouping is regrouped incrementally. The full regroup
starts from a copy of the same state (sizes up to `--full-up-to`: above, it takes longer than the
rest of the run).

FAISS runs on `--threads` OpenMP threads (1: on a busy machine a team of two spends more CPU
waiting for each other than searching, 20 ms against 0.7 ms for one flat query of 10^4 vectors,
which would hide what the store's size does). Printed per N, CPU time (the figure that holds on a
loaded machine): assign per touched offer
(its upsert beside), the incremental regroup per touched offer, the offers it read and pairs it
compared per touched offer, the full regroup per store offer and its ratio to the incremental
regroup, the pair F1 of incremental against full (agreement), and each one's pair F1 against the
catalog's truth over the offers the incremental regroup read, and the index the store searched
(its lists, tuned nprobe and re-rank depth, measured recall, and the size it was trained at: lists
grow up to `retrain_growth` times between re-trainings). Last, how each per-offer cost grows from
the smallest size to the largest (N^0: flat).

Assign's ANN searches ask for grouping's effort (`grouping_effort`: near neighbours only, the
lists the store's upgrade tuned for 0.99 of those at cosine 0.8 or above, printed as "near pN"
in the index column) instead of the store's tuning for recall@10 (about half the lists at every
size on these families). After each crawl they are replayed as tuned (the baseline), at the
near effort ("bound") and at 8/16/32/64 lists, each with its CPU ms per search and its merge
recall: the share of the tuned search's neighbours above cosine `MERGE_COSINE` (those grouping
can merge) it finds. Measured before the near tuning (2026-12-02, 32 lists, one run,
10^4/10^5/10^6): assign 0.71/1.05/1.45 CPU ms a touched offer, its search 0.24/0.35/0.68; merge
recall 1.000/0.993/0.973 (8: 1.000/0.887/0.794, 64: -/1/0.996). With it (`--near`, 2026-12-03,
one run, load 15): near effort p16/p32/p48 of IVF16/128/512, merge recall 1.000/0.999/0.994 for
0.12/0.26/0.63 CPU ms a search (~N^0.36); as tuned 0.12/0.33/1.89; 32 lists 0.977 at 10^6.
`--layouts` at 10^6: the store's IVF1024 needs 64 lists (0.994, 0.46 ms); fixed lists of 512
(IVF1953_HNSW32) 64 lists found 0.985 for 0.74 ms, 128 0.996 for 1.10; HNSW32 at 10^5 ef64
0.998 for 0.56 ms, where IVF128 p32 found 0.998 for 0.15 ms (families near-orthogonal in 384-d).
Incremental regroup (2026-12-03, load 2-10): 17.6 / 22.3 CPU ms a touched offer at 10^4 / 10^5
(1% touched), the title look-up's postings reads the part that grew; with each probed term's
list read once per look-up (`title_terms.POSTINGS_KEPT`) 14.3 / 9.7, and 15.0 with 100 touched
at 10^5. On real titles touched at random (bench_trigram_neighbours.py --regroup) the look-up
still grows until its probes' lists are full (3.9-5.2 / 13.1-15.7 ms at 10^4 / 10^5).

Real offers first (`--real`, WDC categories of ``../shared/data/real/matching/wdc``): each
distinct title of a category's ``valid.txt`` is an offer of a shop of its own (as
``eval_real_matching.py`` ingests them); ``cumpair ingest`` stores most of them, a second ingest
the rest (`--real-late`), whose end regroups incrementally; a full regroup of a copy is the
baseline. Printed: the share of the store the incremental regroup read, its agreement with the
full one, and the labelled pairs' F1 read off each grouping (same product = same).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import faiss
import numpy as np

from cumpair.demo.catalog import build_catalog
from cumpair.index import ProductStore, SearchEffort, SpaceSpec, StoreOptions
from cumpair.index.products import MemberRow, ProductTables
from cumpair.index.records import OfferRecord
from cumpair.ingest.stages import FULL_REGROUP_SHARE, regroup_store
from cumpair.search.candidates import touched_pairs, touched_reach
from cumpair.search.demo_index import demo_offer_record, demo_url
from cumpair.search.evaluation import pairwise_scores
from cumpair.search.features import OfferFeatures, clean_text, features_from_record
from cumpair.search.matcher_train import pair_scores, read_pairs
from cumpair.search.products import ProductGroups, grouping_effort
from cumpair.search.store_scan import scan_offers

DIM = 384
FAMILY = 16  # products per family of similar titles (offer_vectors)
WDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "matching" / "wdc"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def offer_vectors(catalog, offers, seed: int) -> np.ndarray:
    """One unit vector per offer, clustered as title vectors are: families of `FAMILY` products
    of one category and brand share a direction (cosine ~0.6 between their products, ~0 to
    other families), each product its own within it, each offer its product's plus noise
    (cosine ~0.93 within). Every offer so has true nearest neighbours at any store size, as
    real title vectors do; without families, all but its product's 1-3 other offers are ties
    in noise, the store's IVF tuning never reaches its recall target and falls back to
    scanning every list (which grows with N)."""
    rng = np.random.default_rng(seed)
    order = sorted(catalog.products, key=lambda p: (p.category, p.brand))
    index = {p.product_id: n for n, p in enumerate(order)}
    families = unit_rows(rng.standard_normal((len(order) // FAMILY + 1, DIM), dtype=np.float32))
    centres = families[np.arange(len(order)) // FAMILY]
    centres += 0.8 * unit_rows(rng.standard_normal(centres.shape, dtype=np.float32))
    rows = unit_rows(centres)[[index[o.product_id] for o in offers]]
    del families, centres
    rows += 0.02 * rng.standard_normal(rows.shape, dtype=np.float32)
    return unit_rows(rows)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """`rows` scaled to unit length in place (at 10^6 offers a copy is 1.5 GB more)."""
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def open_store(path: Path, upgrade_at: int) -> ProductStore:
    return ProductStore.open(
        path,
        {"text": SpaceSpec(DIM, "bench-random", "1")},
        StoreOptions(
            duplicate_threshold=None, background_upgrade=False, upgrade_threshold=upgrade_at
        ),
    )


def build(path: Path, n: int, touched: float, seed: int, upgrade_at: int, workers: int):
    """The grouped store of `n` offers after its first crawls, and the next crawl's offers
    (`touched`: a share of `n` below 1, else a number of offers; half new, half repriced).
    `workers` processes make the stored records and their match features (most of the build's
    CPU at 10^6 offers); the main process writes them."""
    catalog = build_catalog(n_products=max(2, n // 2), seed=seed, defects_per_kind=0)
    offers = catalog.offers[:n]
    vectors = offer_vectors(catalog, offers, seed)
    count = touched * n if touched < 1 else touched
    late_products = max(1, round(count / 2 / 3))  # a product has about 3 offers
    kept = list(dict.fromkeys(o.product_id for o in offers))  # products with offers in the store
    late_ids = set(kept[-late_products:])
    early = [i for i, o in enumerate(offers) if o.product_id not in late_ids]
    late = [i for i, o in enumerate(offers) if o.product_id in late_ids]
    rng = random.Random(seed)
    repriced = rng.sample(early, min(len(early), max(1, round(count / 2))))
    _BUILDING[:] = offers  # what forked workers read
    grouped: dict[str, list] = defaultdict(list)  # catalog product -> (record, features)
    with multiprocessing.get_context("fork").Pool(workers) as pool:  # before the store's threads
        store = open_store(path, upgrade_at)
        forms = zip(early, pool.imap(stored_form, early, chunksize=250), strict=True)
        while chunk := list(itertools.islice(forms, 5000)):
            results = store.upsert_many(
                [(record, {"text": vectors[i]}) for i, (record, _) in chunk]
            )
            for (i, (record, features)), result in zip(chunk, results, strict=True):
                grouped[offers[i].product_id].append(
                    (replace(record, id=result.offer_id), features)
                )
    _BUILDING.clear()
    seed_grouping(path, grouped.values())
    second = [(i, None) for i in late] + [(i, offers[i].price - Decimal("1.00")) for i in repriced]
    return store, offers, vectors, second


_BUILDING: list = []  # the catalog offers `build` stores, inherited by its forked workers


def stored_form(i: int) -> tuple[OfferRecord, OfferFeatures]:
    """Offer `i` of the build as a first crawl stores it, and its match features (keyed 0:
    the store numbers the offer later)."""
    record = demo_offer_record(_BUILDING[i], seen_at=T0)
    return record, features_from_record(replace(record, id=0))


def seed_grouping(path: Path, products) -> None:
    """Write each catalog product's offers (records with their features) as one product (what
    earlier crawls left, without a mistake), with the match keys grouping stores for each."""
    tables = ProductTables.open(path)
    try:
        with tables.transaction():
            for members in products:
                first = members[0][0]
                product_id = tables.new_product(first.title, first.brand, first.model, first.gtin)
                for n, (record, offer) in enumerate(members):
                    member = MemberRow(
                        record.id, product_id, offer.gtin, offer.brand,
                        tuple(sorted(offer.models)), dict(offer.specs),
                        "new" if n == 0 else "learned", 1.0, None if n == 0 else first.id, {},
                    )  # fmt: skip
                    tables.put_member(member, record.brand, record.model)
    finally:
        tables.close()


MERGE_COSINE = 0.8  # neighbours above it are ones grouping can merge: the same product's
# offers (cosine ~0.87 in offer_vectors) where a family's other products sit at ~0.6
LADDER = (8, 16, 32, 64)  # lists the replay measures the merge recall at, beside the default


class TimedSearch:
    """`store` whose `search` adds its CPU seconds to `seconds` (what an assign spends in the
    ANN index, apart from its SQL and matching work), and keeps each search made with an effort
    (grouping's) for `replay`."""

    def __init__(self, store) -> None:
        self._store, self.seconds, self.calls = store, 0.0, []

    def search(self, space, queries, k=10, filters=None, effort=None):
        started = time.process_time()
        try:
            return self._store.search(space, queries, k, filters, effort)
        finally:
            self.seconds += time.process_time() - started
            if effort is not None:
                self.calls.append((space, queries, k, filters))

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def replay(store, calls, effort: SearchEffort) -> tuple[float, list[list]]:
    """assign's searches again at `effort` (``SearchEffort()``: as tuned): CPU seconds and
    hits."""
    started = time.process_time()
    hits = [store.search(space, q, k, f, effort)[0] for space, q, k, f in calls]
    return time.process_time() - started, hits


def merge_recall(bounded: list[list], tuned: list[list]) -> float:
    """Share of the tuned search's neighbours above `MERGE_COSINE` (the query's own vector left
    out) that the bounded search found too: the neighbours grouping can merge."""
    found = total = 0
    for mine, full in zip(bounded, tuned, strict=True):
        ids = {h.offer_id for h in mine}
        near = [h.offer_id for h in full if MERGE_COSINE <= h.score < 0.9999]
        total += len(near)
        found += sum(o in ids for o in near)
    return found / total if total else float("nan")


def second_crawl(store, path, offers, vectors, second) -> tuple[set[int], float, float, float]:
    """Upsert and assign the next crawl's offers as the pipeline does: (touched, upsert and
    assign CPU seconds per offer, and the `TimedSearch` that saw assign's ANN searches)."""
    records = []
    for i, price in second:
        record = demo_offer_record(offers[i], seen_at=T0 + timedelta(days=1))
        records.append((i, record if price is None else replace(record, price=price)))
    touched, upsert_s, assign_s = set(), 0.0, 0.0
    timed = TimedSearch(store)
    with ProductGroups.open(path) as groups:
        for i, record in records:
            started = time.process_time()
            result = store.upsert(record, {"text": vectors[i]})
            between = time.process_time()
            groups.assign(timed, result.offer_id, {"text": vectors[i]})
            upsert_s += between - started
            assign_s += time.process_time() - between
            touched.add(result.offer_id)
    n = len(records)
    return touched, upsert_s / n, assign_s / n, timed


def index_label(params: dict) -> str:
    """Lists, nprobe, re-rank depth, recall and training size: 'IVF1024 p16 x4 r0.96 @320000'."""
    if params["kind"] != "ivfpq":
        return "flat"
    near = f" near p{params['near_nprobe']}" if params.get("near_nprobe") else ""
    return (
        f"IVF{params['nlist']} p{params['nprobe']} x{params['k_factor']} "
        f"r{params['recall']:.2f}{near} @{params['trained_on']}"
    )


def labels(path: Path, offer_ids) -> dict[int, int]:
    with ProductGroups.open(path, readonly=True) as groups:
        return groups.product_of(offer_ids)


def restricted(grouping: dict[int, int], offers) -> dict[int, int]:
    return {o: grouping[o] for o in offers}


def run_size(n: int, touched: float, seed: int, upgrade_at: int, full: bool, workers: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-grouping-{n}-"))
    try:
        path = work / "store"
        started = time.perf_counter()
        store, offers, vectors, second = build(path, n, touched, seed, upgrade_at, workers)
        built = time.perf_counter() - started
        touched, upsert_s, assign_s, timed = second_crawl(store, path, offers, vectors, second)
        ann_s = timed.seconds / len(touched)
        # the same searches replayed as tuned (the baseline) and at each effort of the ladder
        tuned_s, tuned_hits = replay(store, timed.calls, SearchEffort())
        default = grouping_effort()  # the store's lists for near neighbours
        ladder = {}
        for lists in (default, *LADDER):
            effort = lists if isinstance(lists, SearchEffort) else SearchEffort(lists=lists)
            bounded_s, hits = replay(store, timed.calls, effort)
            ladder["near" if lists is default else lists] = (
                bounded_s, merge_recall(hits, tuned_hits)
            )  # fmt: skip
        searched = store.health()["spaces"]["text"]["index"]
        store.close()
        del vectors
        before = work / "before"  # the same state for the full regroup
        if full:
            shutil.copytree(path, before)
        store = open_store(path, upgrade_at)
        product_of_url = {demo_url(o): o.product_id for o in offers}
        truth = {r.id: product_of_url[r.url] for r in scan_offers(store)}
        ids = list(truth)

        with ProductGroups.open(path) as groups:
            reach = touched_reach(store, groups, touched)  # what the regroup will look at
            scope, pairs = reach.scope(), len(touched_pairs(reach))
            cpu = time.process_time()
            regroup_store(store, groups, touched)
            incremental_cpu = time.process_time() - cpu
        incremental = labels(path, ids)
        store.close()
        row = {
            "offers": len(ids),
            "touched": len(touched),
            "build_s": built,
            "upsert_ms": 1000 * upsert_s,
            "assign_ms": 1000 * assign_s,
            "ann_ms": 1000 * ann_s,
            "rest_ms": 1000 * (assign_s - ann_s),
            "tuned_ms": 1000 * tuned_s / len(timed.calls),
            "bounded_ms": 1000 * ladder["near"][0] / len(timed.calls),
            "merge_recall": ladder["near"][1],
            "ladder": {n: (1000 * t / len(timed.calls), r) for n, (t, r) in ladder.items()},
            "incremental_ms": 1000 * incremental_cpu / len(touched),
            "scope": len(scope) / len(touched),
            "pairs": pairs / len(touched),
            "index": index_label(searched),
            "truth_f1_incremental": pairwise_scores(
                restricted(incremental, scope), restricted(truth, scope)
            ).f1,
        }
        if full:
            store = open_store(before, upgrade_at)
            with ProductGroups.open(before) as groups:
                cpu = time.process_time()
                regroup_store(store, groups)
                full_cpu = time.process_time() - cpu
            complete = labels(before, ids)
            store.close()
            row |= {
                "full_ms": 1000 * full_cpu / len(ids),
                "ratio": full_cpu / incremental_cpu,
                "agreement_f1": pairwise_scores(incremental, complete).f1,
                "truth_f1_full": pairwise_scores(
                    restricted(complete, scope), restricted(truth, scope)
                ).f1,
            }
        return row
    finally:
        shutil.rmtree(work, ignore_errors=True)


def real_run(category: str, late_share: float, seed: int) -> dict:
    """Two ingests of a WDC category's offers, then a full regroup of a copy (module doc)."""
    pairs = list(read_pairs(WDC / category / "valid.txt"))
    titles: dict[str, str] = {}  # clean title -> the first raw title with it
    for pair in pairs:
        for offer in (pair.left, pair.right):
            titles.setdefault(clean_text(offer["title"]), offer["title"])
    url_of = {key: f"https://wdc.invalid/{category}/{n}" for n, key in enumerate(titles)}
    keys = list(titles)
    late = set(random.Random(seed).sample(keys, max(1, round(late_share * len(keys)))))
    work = Path(tempfile.mkdtemp(prefix=f"bench-grouping-{category}-"))
    try:
        index, copy = work / "index", work / "full"
        for name, part in (("early", [k for k in keys if k not in late]), ("late", late)):
            feed = work / f"{name}.jsonl"
            with feed.open("w", encoding="utf-8") as out:
                for key in part:
                    shop = "wdc-" + url_of[key].rsplit("/", 1)[1]  # a shop of its own
                    row = {"shop": shop, "url": url_of[key], "title": titles[key]}
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
            subprocess.run(
                [sys.executable, "-m", "cumpair.cli", "ingest", "--index", str(index),
                 "--allow-missing-price", "--no-images", "--progress-every", "1000000", str(feed)],
                check=True, stdout=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            )  # fmt: skip
        shutil.copytree(index, copy)
        groupings = {}
        for name, path in (("incremental", index), ("full", copy)):
            with ProductStore.open(path) as store, ProductGroups.open(path) as groups:
                offer_of = {key: store.offers_with_url(url)[0] for key, url in url_of.items()}
                if name == "full":
                    touched = [offer_of[k] for k in late]
                    scope = len(touched_reach(store, groups, touched).scope())
                    regroup_store(store, groups)
                groupings[name] = groups.product_of(offer_of.values())
        labels = np.array([p.label for p in pairs])
        scores = {}
        for name, grouping in groupings.items():
            same = [
                grouping[offer_of[clean_text(p.left["title"])]]
                == grouping[offer_of[clean_text(p.right["title"])]]
                for p in pairs
            ]
            scores[name] = pair_scores(np.array(same), labels)["f1"]
        return {
            "category": category,
            "offers": len(keys),
            "late": len(late),
            "read": scope / len(keys),
            "agreement_f1": pairwise_scores(groupings["incremental"], groupings["full"]).f1,
            "f1_incremental": scores["incremental"],
            "f1_full": scores["full"],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def layout_vectors(n: int, seed: int) -> np.ndarray:
    """`offer_vectors`' clustering without a catalog: families of `FAMILY` products, three
    offers a product (a catalog of 10^6 offers alone takes minutes to make)."""
    rng = np.random.default_rng(seed)
    products = n // 3 + 1
    families = unit_rows(rng.standard_normal((products // FAMILY + 1, DIM), dtype=np.float32))
    centres = families[np.arange(products) // FAMILY]
    centres += 0.8 * unit_rows(rng.standard_normal(centres.shape, dtype=np.float32))
    rows = unit_rows(centres)[rng.integers(0, products, n)]
    rows += 0.02 * rng.standard_normal(rows.shape, dtype=np.float32)
    return unit_rows(rows)


def layout_run(n: int, seed: int, hnsw: bool, queries: int = 1000) -> None:
    """Raw FAISS indexes for grouping's neighbours on `n` clustered vectors, held-out queries
    one at a time, k=11 re-ranked exactly from RAM: CPU ms per query and merge recall (the share
    of the exact neighbours above `MERGE_COSINE` found). The store's layout (its nlist at this
    size, lists at their training fill) over a probe ladder; lists of a fixed size (512, nlist
    growing with N) under an HNSW coarse quantiser; an HNSW graph over every vector."""
    from cumpair.index import ivf

    data = layout_vectors(n + queries, seed)
    base, held = data[:n], data[n:]
    scores, rows = faiss.knn(held, base, 11, faiss.METRIC_INNER_PRODUCT)
    truth = [set(r[s >= MERGE_COSINE].tolist()) for s, r in zip(scores, rows, strict=True)]
    pairs = sum(map(len, truth))
    store_nlist = ivf.choose_ivfpq(n, DIM, StoreOptions()).nlist
    m = ivf.choose_ivfpq(n, DIM, StoreOptions()).m
    layouts = [
        (f"IVF{store_nlist},PQ{m}x4fs", "nprobe", (4, 8, 16, 32, 64, 128)),
        (f"IVF{max(16, n // 512)}_HNSW32,PQ{m}x4fs", "nprobe", (4, 8, 16, 32, 64, 128)),
    ]
    if hnsw:
        layouts.append(("HNSW32", "efSearch", (16, 32, 64, 128)))
    for factory, knob, ladder in layouts:
        index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
        started = time.process_time()
        if not index.is_trained:
            nlist = faiss.extract_index_ivf(index).nlist
            pick = np.random.default_rng(seed).choice(n, min(n, 40 * nlist), replace=False)
            index.train(base[np.sort(pick)])
        index.add(base)
        build = time.process_time() - started
        for value in ladder:
            if knob == "efSearch":
                params = faiss.SearchParametersHNSW(efSearch=value)
            else:
                if value > faiss.extract_index_ivf(index).nlist:
                    continue
                params = ivf.search_parameters(index, value)
            depth = 1 if knob == "efSearch" else 4
            found = 0
            started = time.process_time()
            for q, near in zip(held, truth, strict=True):
                _, ids = index.search(q[None], 11 * depth, params=params)
                ids = ids[0][ids[0] >= 0]
                best = ids[np.argsort(-(base[ids] @ q))[:11]]
                found += len(near.intersection(best.tolist()))
            ms = 1000 * (time.process_time() - started) / len(held)
            print(
                f"{n:>8} {factory:>26} {knob} {value:>3}: {ms:6.3f} CPU ms a query, merge recall"
                f" {found / pairs:.4f} (build {build:.0f} CPU s)",
                flush=True,
            )
        del index


def near_run(n: int, seed: int, upgrade_at: int, queries: int = 1000) -> None:
    """The store's index for grouping alone, without building a store (10^6 offers take hours
    on a busy 2-core machine): trained and tuned by `ivf.build_and_tune` as an upgrade does, on
    the vectors the store had at its last re-training (`upgrade_at` x ``retrain_growth``^i up to
    `n`), then holding all `n`. Held-out queries one at a time, k=11 as assign asks, re-ranked
    from RAM: CPU ms a query and merge recall (exact neighbours above `MERGE_COSINE` found) as
    tuned, at grouping's near effort and at fixed list counts."""
    from cumpair.index import ivf

    options = StoreOptions()
    data = layout_vectors(n + queries, seed)
    base, held = data[:n], data[n:]
    scores, rows = faiss.knn(held, base, 11, faiss.METRIC_INNER_PRODUCT)
    truth = [set(r[s >= MERGE_COSINE].tolist()) for s, r in zip(scores, rows, strict=True)]
    pairs = sum(map(len, truth))
    trained = upgrade_at
    while trained * options.retrain_growth <= n:
        trained = int(trained * options.retrain_growth)
    ids = np.arange(n, dtype=np.int64)

    def lookup(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return base[np.maximum(wanted, 0)], wanted >= 0

    planned = ivf.choose_ivfpq(trained, DIM, options)
    pick = np.sort(
        np.random.default_rng(seed).choice(
            trained, min(trained, ivf.training_size(planned) + ivf.TUNING_QUERIES), False
        )
    )
    started = time.process_time()
    index, params = ivf.build_and_tune(
        base[pick], ids[pick], trained, lambda: iter([(ids[:trained], base[:trained])]),
        lookup, options,
    )  # fmt: skip
    index.add_with_ids(base[trained:], ids[trained:])  # the growth since
    build = time.process_time() - started
    efforts = [("tuned", params.nprobe), ("near", params.probes_for(near=True))]
    efforts += [(f"{p} lists", p) for p in LADDER if p < params.nlist]
    for name, nprobe in efforts:
        found = 0
        started = time.process_time()
        for q, near in zip(held, truth, strict=True):
            _, hits = ivf.search(index, params, q[None], 11, None, lookup, nprobe)
            found += len(near.intersection(hits[0].tolist()))
        ms = 1000 * (time.process_time() - started) / len(held)
        print(
            f"{n:>8} IVF{params.nlist} @{trained} x{params.k_factor} {name:>8} (p{nprobe:>3}):"
            f" {ms:6.3f} CPU ms a search, merge recall {found / pairs:.4f}"
            f" (near tuned recall {params.near_recall}, build {build:.0f} CPU s)",
            flush=True,
        )


def _cell(row: dict, key: str, form: str) -> str:
    return format(row[key], form) if key in row else "-".rjust(int(form.split(".")[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[10_000, 100_000], help="offers per store"
    )
    parser.add_argument(
        "--touched",
        type=float,
        default=0.01,
        help="offers a crawl touches: a share of the store below 1, else a count (0.01)",
    )
    parser.add_argument(
        "--upgrade-at",
        type=int,
        default=5_000,
        help="vectors before IVF-PQ (5000: every size searches the same kind of index)",
    )
    parser.add_argument(
        "--full-up-to", type=int, default=100_000, help="largest size regrouped fully too"
    )
    parser.add_argument("--threads", type=int, default=1, help="FAISS OpenMP threads (1)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes making each store's records (build only; all cores)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--real", nargs="*", default=["cameras"], help="WDC categories first (none: skip)"
    )
    parser.add_argument(
        "--real-late", type=float, default=0.01, help="share of real offers ingested late"
    )
    parser.add_argument(
        "--layouts",
        action="store_true",
        help="instead: raw FAISS layouts for grouping's neighbours at each size (`layout_run`)",
    )
    parser.add_argument(
        "--near",
        action="store_true",
        help="instead: the store's index alone at each size, as tuned and at grouping's effort",
    )
    parser.add_argument(
        "--hnsw-up-to", type=int, default=100_000, help="largest size --layouts builds HNSW at"
    )
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    if args.near:
        for n in args.sizes:
            near_run(n, args.seed, args.upgrade_at)
        return
    if args.layouts:
        for n in args.sizes:
            layout_run(n, args.seed, n <= args.hnsw_up_to)
        return

    if args.real and not WDC.is_dir():
        print(f"no real data at {WDC}: real offers skipped")
    elif args.real:
        print("real offers (WDC valid.txt), a late ingest regrouped incrementally vs fully:")
        print(
            f"{'category':>10} {'offers':>6} {'late':>5} {'read':>6} | "
            f"{'agree F1':>8} {'pairs F1 incr':>13} {'pairs F1 full':>13}"
        )
        for category in args.real:
            row = real_run(category, args.real_late, args.seed)
            full_anyway = row["read"] >= FULL_REGROUP_SHARE
            print(
                f"{row['category']:>10} {row['offers']:>6} {row['late']:>5} {row['read']:>6.1%} | "
                f"{row['agreement_f1']:>8.3f} {row['f1_incremental']:>13.3f} "
                f"{row['f1_full']:>13.3f}"
                + ("  (read half the store or more: regrouped fully)" * full_anyway),
                flush=True,
            )
        print()

    print(
        "per touched offer: upsert, assign (its ANN search and the rest) CPU ms; assign's"
        " searches replayed per search: as tuned (baseline) and bounded (grouping's effort), CPU"
        f" ms, and the share of the tuned search's neighbours above cosine {MERGE_COSINE} the"
        " bounded one keeps (merge); incremental regroup"
        " CPU ms, offers read, pairs compared; full: regroup CPU ms per store offer, and its CPU"
        " over the incremental's"
    )
    print(
        f"{'offers':>8} {'touched':>7} | {'upsert':>6} {'assign':>6} {'(ann':>5} {'rest)':>5} "
        f"{'tuned':>5} {'bound':>5} {'merge':>6} "
        f"{'regroup':>7} "
        f"{'read':>5} {'pairs':>6} | {'full':>6} {'ratio':>7} | "
        f"{'agree F1':>8} {'F1 incr':>7} {'F1 full':>7} | {'build s':>7} {'load':>5} | index"
    )
    measured = []
    for n in args.sizes:
        row = run_size(
            n, args.touched, args.seed, args.upgrade_at, n <= args.full_up_to, args.workers
        )
        measured.append(row)
        ratio = f"{row['ratio']:>6.1f}x" if "ratio" in row else "-".rjust(7)
        print(
            f"{row['offers']:>8} {row['touched']:>7} | {row['upsert_ms']:>6.2f} "
            f"{row['assign_ms']:>6.2f} {row['ann_ms']:>5.2f} {row['rest_ms']:>5.2f} "
            f"{row['tuned_ms']:>5.2f} {row['bounded_ms']:>5.2f} {row['merge_recall']:>6.4f} "
            f"{row['incremental_ms']:>7.2f} {row['scope']:>5.1f} "
            f"{row['pairs']:>6.1f} | {_cell(row, 'full_ms', '6.2f')} {ratio} | "
            f"{_cell(row, 'agreement_f1', '8.3f')} {row['truth_f1_incremental']:>7.3f} "
            f"{_cell(row, 'truth_f1_full', '7.3f')} | {row['build_s']:>7.0f} "
            f"{os.getloadavg()[0]:>5.1f} | {row['index']}",
            flush=True,
        )
        print(
            "          replayed per search, lists: CPU ms, merge recall: "
            + ", ".join(f"{n}: {t:.2f} {r:.4f}" for n, (t, r) in row["ladder"].items()),
            flush=True,
        )
    if len(measured) >= 2:
        a, b = measured[0], measured[-1]
        scale = math.log(b["offers"] / a["offers"])
        growth = ", ".join(
            f"{name} ~N^{math.log(b[key] / a[key]) / scale:.2f}"
            for name, key in (
                ("assign", "assign_ms"),
                ("its ANN search", "ann_ms"),
                ("the rest of it (SQL, matching)", "rest_ms"),
                ("the replayed search as tuned (baseline)", "tuned_ms"),
                ("bounded", "bounded_ms"),
                ("incremental regroup", "incremental_ms"),
            )
        )
        print(f"per touched offer from {a['offers']} to {b['offers']} offers: {growth}")
        if "full_ms" in a and "full_ms" in b:
            print(
                f"full regroup per store offer: ~N^"
                f"{math.log(b['full_ms'] / a['full_ms']) / scale:.2f}"
            )


if __name__ == "__main__":
    main()
