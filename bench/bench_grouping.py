"""Benchmark regrouping after a crawl: a full regroup (the baseline, what every crawl's end did)
against the incremental regroup of the products the crawl touched, from the same state, in one run.

For each size N: a store of N demo-catalog offers (records as a crawl stores them; text vectors
synthetic, 384-d like MiniLM: one direction per product plus noise) is grouped as earlier crawls
left it. A later crawl then touches some of it (`--touched`, a share or a count: offers of new
products, and price changes of existing offers), each offer grouped on arrival as the pipeline
does. The grouping is then regrouped twice from that same state (the closed store directory,
products included since they share its database, is copied aside first): fully, and
incrementally (`cumpair.ingest.stages.regroup_store(touched)`).
Printed per N: wall and CPU seconds of each (CPU: the figure that holds on a loaded machine),
their ratios, the offers the incremental pass looked at, how far the two groupings agree (pair
F1 of incremental against full) and each one's pair F1 against the catalog's truth.

Defaults: N = 10^4 and 10^5. Sizes not run (`--extrapolate`, 10^6) are extrapolated from the
CPU seconds of the two largest measured."""

from __future__ import annotations

import argparse
import itertools
import math
import random
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from cumpair.demo.catalog import build_catalog
from cumpair.index import ProductStore, SpaceSpec, StoreOptions
from cumpair.ingest.stages import regroup_store, touched_scope
from cumpair.search.demo_index import demo_offer_record, demo_url
from cumpair.search.evaluation import pairwise_scores
from cumpair.search.products import ProductGroups
from cumpair.search.store_scan import first_vectors, scan_offers

DIM = 384
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def offer_vectors(catalog, offers, seed: int) -> np.ndarray:
    """One unit vector per offer: its product's direction plus noise (cosine ~0.9 within)."""
    rng = np.random.default_rng(seed)
    index = {p.product_id: n for n, p in enumerate(catalog.products)}
    centres = rng.standard_normal((len(catalog.products), DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = centres[[index[o.product_id] for o in offers]]
    rows = rows + 0.02 * rng.standard_normal(rows.shape, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def open_store(path: Path) -> ProductStore:
    return ProductStore.open(
        path,
        {"text": SpaceSpec(DIM, "bench-random", "1")},
        StoreOptions(duplicate_threshold=None, background_upgrade=False),
    )


def build(path: Path, n: int, touched: float, seed: int):
    """The grouped store of `n` offers after its first crawl, and the second crawl's offers
    (`touched`: a share of `n` below 1, else a number of offers; half new, half repriced)."""
    catalog = build_catalog(n_products=max(2, n // 2), seed=seed, defects_per_kind=0)
    offers = catalog.offers[:n]
    vectors = offer_vectors(catalog, offers, seed)
    count = touched * n if touched < 1 else touched
    late_products = max(1, round(count / 2 / 3))  # a product has about 3 offers
    late_ids = {p.product_id for p in catalog.products[-late_products:]}
    early = [i for i, o in enumerate(offers) if o.product_id not in late_ids]
    late = [i for i, o in enumerate(offers) if o.product_id in late_ids]
    rng = random.Random(seed)
    repriced = rng.sample(early, min(len(early), max(1, round(count / 2))))
    store = open_store(path)
    for start in range(0, len(early), 5000):
        chunk = early[start : start + 5000]
        store.upsert_many(
            [(demo_offer_record(offers[i], seen_at=T0), {"text": vectors[i]}) for i in chunk]
        )
    started = time.perf_counter()
    with ProductGroups.open(path) as groups:
        first_grouping(store, groups, [offers[i] for i in early])
    first = time.perf_counter() - started
    second = [(i, None) for i in late] + [(i, offers[i].price - Decimal("1.00")) for i in repriced]
    return store, offers, vectors, second, first


def first_grouping(store, groups, offers, part: int = 5000) -> None:
    """The grouping earlier crawls left: regroups of parts of `part` offers, each holding whole
    products (catalog order keeps a product's offers together), so building it costs N/part
    small regroups instead of one full one; the measured regroups start from it."""
    records = scan_offers(store)  # in upsert order, i.e. catalog order
    cuts = [0]
    for n in range(part, len(records), part):
        while n < len(records) and offers[n].product_id == offers[n - 1].product_id:
            n += 1
        cuts.append(n)
    cuts.append(len(records))
    for start, end in itertools.pairwise(cuts):
        if start < end:
            chunk = records[start:end]
            groups.regroup(chunk, first_vectors(store, [r.id for r in chunk]), partial=True)


def second_crawl(store, path, offers, vectors, second) -> tuple[set[int], float]:
    """Upsert and assign the second crawl's offers as the pipeline does; (touched, s/offer)."""
    touched = set()
    started = time.perf_counter()
    with ProductGroups.open(path) as groups:
        for i, price in second:
            record = demo_offer_record(offers[i], seen_at=T0 + timedelta(days=1))
            if price is not None:
                record = replace(record, price=price)
            result = store.upsert(record, {"text": vectors[i]})
            groups.assign(store, result.offer_id, {"text": vectors[i]})
            touched.add(result.offer_id)
    return touched, (time.perf_counter() - started) / max(1, len(second))


def labels(path: Path, offer_ids) -> dict[int, int]:
    with ProductGroups.open(path, readonly=True) as groups:
        return groups.product_of(offer_ids)


def run_size(n: int, touched: float, seed: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-grouping-{n}-"))
    try:
        path = work / "store"
        started = time.perf_counter()
        store, offers, vectors, second, first = build(path, n, touched, seed)
        built = time.perf_counter() - started
        touched, assign_s = second_crawl(store, path, offers, vectors, second)
        store.close()
        before = work / "before"  # the same state for the full regroup
        shutil.copytree(path, before)
        store = open_store(path)
        product_of_url = {demo_url(o): o.product_id for o in offers}
        truth = {r.id: product_of_url[r.url] for r in scan_offers(store)}
        ids = list(truth)

        with ProductGroups.open(path) as groups:
            scope = len(touched_scope(store, groups, touched))
            started, cpu = time.perf_counter(), time.process_time()
            _, looked_at = regroup_store(store, groups, touched)
            incremental_s = time.perf_counter() - started
            incremental_cpu = time.process_time() - cpu
        incremental = labels(path, ids)
        store.close()

        store = open_store(before)
        with ProductGroups.open(before) as groups:
            started, cpu = time.perf_counter(), time.process_time()
            regroup_store(store, groups)
            full_s = time.perf_counter() - started
            full_cpu = time.process_time() - cpu
        full = labels(before, ids)
        store.close()
        return {
            "offers": len(ids),
            "touched": len(touched),
            "build_s": built,
            "first_regroup_s": first,
            "assign_ms": 1000 * assign_s,
            "full_s": full_s,
            "incremental_s": incremental_s,
            "full_cpu": full_cpu,
            "incremental_cpu": incremental_cpu,
            "scope": scope,
            "looked_at": looked_at,
            "agreement_f1": pairwise_scores(incremental, full).f1,
            "truth_f1_full": pairwise_scores(full, truth).f1,
            "truth_f1_incremental": pairwise_scores(incremental, truth).f1,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000], help="offers per store"
    )
    parser.add_argument(
        "--touched",
        type=float,
        default=0.01,
        help="offers a crawl touches: a share of the store below 1, else a count (0.01)",
    )
    parser.add_argument("--extrapolate", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(
        f"{'offers':>8} {'touched':>8} {'full s':>8} {'incr s':>8} {'ratio':>7} "
        f"{'full cpu':>8} {'incr cpu':>8} {'ratio':>7} {'scope':>7} "
        f"{'agree F1':>8} {'F1 full':>8} {'F1 incr':>8} {'assign ms':>9} {'build s':>8}"
    )
    measured: list[dict[str, float]] = []
    for n in args.sizes:
        row = run_size(n, args.touched, args.seed)
        measured.append(row)
        print(
            f"{row['offers']:>8} {row['touched']:>8} {row['full_s']:>8.2f} "
            f"{row['incremental_s']:>8.2f} {row['full_s'] / row['incremental_s']:>6.1f}x "
            f"{row['full_cpu']:>8.2f} {row['incremental_cpu']:>8.2f} "
            f"{row['full_cpu'] / row['incremental_cpu']:>6.1f}x "
            f"{row['looked_at']:>7} {row['agreement_f1']:>8.3f} {row['truth_f1_full']:>8.3f} "
            f"{row['truth_f1_incremental']:>8.3f} {row['assign_ms']:>9.1f} {row['build_s']:>8.1f}",
            flush=True,
        )
    if len(measured) >= 2:
        a, b = measured[-2], measured[-1]
        scale = math.log(b["offers"] / a["offers"])
        for n in args.extrapolate:
            if n in args.sizes:
                continue
            growth = {
                key: math.log(b[key] / a[key]) / scale for key in ("full_cpu", "incremental_cpu")
            }
            factor = n / b["offers"]
            full = b["full_cpu"] * factor ** growth["full_cpu"]
            incremental = b["incremental_cpu"] * factor ** growth["incremental_cpu"]
            print(
                f"{n:>8} extrapolated CPU: full {full:.0f} s (~N^{growth['full_cpu']:.2f}), "
                f"incremental {incremental:.0f} s (~N^{growth['incremental_cpu']:.2f}), "
                f"ratio {full / incremental:.1f}x"
            )


if __name__ == "__main__":
    main()
