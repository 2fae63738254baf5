"""Benchmark the product store against raw FAISS on the same vectors, in one run.

1. overhead: add throughput and search QPS of the store vs a raw IDMap2(FlatIP) (target >= 0.9x).
   An add to the store is durable when it returns (offer row, price history, vector log, all
   committed), which an in-memory ``add_with_ids`` is not; so adds are also compared with that
   durability written by hand with the same tools, one transaction per batch, twice: thin (raw
   FAISS + the raw vectors appended to a file + 7-column offer and price rows by
   ``executemany``) and with the store's writes (its schema, columns, indexes, vector rows and
   checksummed log), which is the honest baseline; then a recrawl of every offer at a new
   price against the same update written by hand.
2. IVF-PQ: recall@10 vs exact search, QPS vs exact Flat, bytes per vector, upgrade, flush, load.
3. soak: concurrent readers and one writer for a bounded time; counts checked at the end.

Defaults finish in a few minutes on 2 shared cores; ``--full`` uses the issue's sizes
(10^5 vectors for the overhead, 10^6 x 512 for IVF-PQ).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import NamedTuple

import faiss
import numpy as np

from cumpair.faiss_threads import on_one_thread
from cumpair.index import OfferRecord, ProductStore, SpaceSpec, StoreOptions, ivf

K = 10
RECALL_TARGET = 0.95


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 1000, intrinsic: int = 32):
    """Unit vectors shaped like real embeddings: clustered, with a low intrinsic dimension.

    A mixture of `clusters` Gaussians in an `intrinsic`-d latent space, mapped into `dim`
    dimensions by a fixed random linear map, plus a little isotropic noise. (Isotropic noise in
    all 512 dimensions would make every point of a cluster almost equidistant from the others,
    a nearest-neighbour problem without an answer that no real encoder produces.)
    """
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1234).standard_normal((intrinsic, dim), dtype=np.float32)
    centres = rng.standard_normal((clusters, intrinsic), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = centres[rng.integers(0, clusters, m)]
        z += 0.5 * rng.standard_normal((m, intrinsic), np.float32)
        x = z @ basis + 0.3 * rng.standard_normal((m, dim), np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


REAL_TITLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "matching"
_SUFFIXES = (" | Online Shop", " - buy now", " (new)", " kaufen", " - free shipping", " 2024")


def real_titles() -> list[str]:
    """Distinct real offer titles (WDC pairs, ../shared) and the demo catalogue's titles."""
    titles: set[str] = set()
    for path in sorted(REAL_TITLES.glob("wdc/*/*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            for side in line.split("\t")[:2]:
                titles.add(side.removeprefix("COL title VAL").strip())
    from cumpair.demo.catalog import build_catalog

    titles.update(o.title for o in build_catalog().valid_offers())
    return sorted(t for t in titles if t)


def perturb(title: str, rng: np.random.Generator) -> str:
    """A title as another shop might write it: a word dropped or swapped, a typo, case, a suffix."""
    words = title.split()
    for _ in range(1 + int(rng.integers(0, 3))):
        op = int(rng.integers(0, 5))
        if op == 0 and len(words) > 2:
            del words[int(rng.integers(0, len(words)))]
        elif op == 1 and len(words) > 2:
            i = int(rng.integers(0, len(words) - 1))
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == 2 and words:
            i = int(rng.integers(0, len(words)))
            w = words[i]
            if len(w) > 3:
                j = int(rng.integers(0, len(w) - 1))
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        elif op == 3:
            words = [w.lower() for w in words] if rng.random() < 0.7 else [w.upper() for w in words]
        else:
            words.append(_SUFFIXES[int(rng.integers(0, len(_SUFFIXES)))].strip())
    return " ".join(words)


def real_vectors(n: int, cache: Path, cpu_budget_s: float = 240.0, seed: int = 0) -> np.ndarray:
    """`n` MiniLM vectors of real titles and their perturbations, embedded once into `cache`.

    Every distinct title is embedded, then perturbed copies (at least 2048) until `n` or the CPU
    budget; the rest are real perturbation offsets (perturbed minus original embedding of one
    title) added to other titles' vectors, so every vector's neighbourhood is the encoder's.
    """
    if cache.exists():
        data = np.load(cache)
        if len(data) >= n:
            return data[:n]
    from cumpair.embed import load_encoders

    encoder = load_encoders("offline").text
    rng = np.random.default_rng(seed)
    titles = real_titles()
    started = time.process_time()
    vectors = [encoder.encode_texts(titles[s : s + 256]) for s in range(0, len(titles), 256)]
    base = np.concatenate(vectors)
    offsets = []
    embedded = len(base)
    while embedded < n and (time.process_time() - started < cpu_budget_s or len(offsets) < 8):
        pick = rng.integers(0, len(titles), 256)
        moved = encoder.encode_texts([perturb(titles[i], rng) for i in pick])
        vectors.append(moved)
        offsets.append(moved - base[pick])
        embedded += len(moved)
    print(
        f"  embedded {len(titles)} real titles + {embedded - len(titles)} perturbed copies in "
        f"{time.process_time() - started:.0f} s CPU"
    )
    data = np.concatenate(vectors)[:n]
    if len(data) < n:
        shifts = np.concatenate(offsets)
        fill = base[rng.integers(0, len(base), n - len(data))]
        fill += shifts[rng.integers(0, len(shifts), len(fill))]
        data = np.concatenate([data, fill / np.linalg.norm(fill, axis=1, keepdims=True)])
        print(f"  + {len(fill)} vectors from real perturbation offsets on other titles")
    data = data[rng.permutation(len(data))].astype(np.float32)
    np.save(cache, data)
    return data


def items(vectors: np.ndarray, start: int = 0):
    return [
        (OfferRecord("shop", f"u{start + i}", price=Decimal(i % 1000)), {"image": v})
        for i, v in enumerate(vectors)
    ]


class Timing(NamedTuple):
    """Seconds a step took: by the wall clock, and in this process's CPU (the machine is shared)."""

    wall: float
    cpu: float

    @classmethod
    def best(cls, runs: list[Timing]) -> Timing:
        return cls(min(r.wall for r in runs), min(r.cpu for r in runs))


@contextlib.contextmanager
def clock():
    """Yields a list that holds the block's `Timing` once it ends."""
    out: list[Timing] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out.append(Timing(time.perf_counter() - wall, time.process_time() - cpu))


def batches_of(data: np.ndarray, batch: int = 5000) -> list[list]:
    """The upsert batches of `data` as new offers (records built once, before any clock)."""
    return [items(data[start : start + batch], start) for start in range(0, len(data), batch)]


def upsert_batches(store: ProductStore, batches: list[list]) -> Timing:
    with clock() as took:
        for part in batches:
            store.upsert_many(part)
    return took[0]


def load(store: ProductStore, data: np.ndarray, batch: int = 5000) -> float:
    """Wall seconds to upsert `data` as new offers (the records are built before the clock)."""
    return upsert_batches(store, batches_of(data, batch)).wall


def row(name: str, baseline: float, ours: float, unit: str, label: str = "raw") -> None:
    print(
        f"  {name:<28} {label} {baseline:>12.1f} {unit:<8} store {ours:>12.1f} {unit:<8} "
        f"ratio {ours / baseline:5.2f}x"
    )


def durable_by_hand(root: Path, data: np.ndarray, ids: np.ndarray, batch: int = 5000) -> Timing:
    """Time to add `data` to raw FAISS with the store's durability, written directly.

    The thin version of the store's work: a 7-column offers table with one unique index, a
    history table without an index, and the raw float32 vectors appended to a file (no ids, no
    checksums, no vector rows in SQLite). `same_work_by_hand` is the same writes as the store.
    """
    root.mkdir()
    conn = sqlite3.connect(root / "meta.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE offers (id INTEGER PRIMARY KEY, shop TEXT, url TEXT, price TEXT,"
        " price_num REAL, seen TEXT, row INTEGER, UNIQUE (shop, url))"
    )
    conn.execute("CREATE TABLE history (id INTEGER PRIMARY KEY, offer INTEGER, price TEXT)")
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(data.shape[1]))
    with clock() as took, open(root / "vectors.f32", "wb") as log:
        for start in range(0, len(data), batch):
            chunk, chunk_ids = data[start : start + batch], ids[start : start + batch]
            seen = datetime.now(UTC).isoformat()
            offers = [
                (i + 1, "shop", f"u{i}", str(Decimal(i % 1000)), float(i % 1000), seen, i)
                for i in range(start, start + len(chunk))
            ]
            conn.execute("BEGIN IMMEDIATE")
            log.write(chunk.tobytes())
            log.flush()
            conn.executemany("INSERT INTO offers VALUES (?, ?, ?, ?, ?, ?, ?)", offers)
            conn.executemany(
                "INSERT INTO history (offer, price) VALUES (?, ?)", [(o[0], o[3]) for o in offers]
            )
            conn.execute("COMMIT")
            index.add_with_ids(chunk, chunk_ids)
    conn.close()
    return took[0]


_OFFER_INSERT = (
    "INSERT INTO offers (id, shop, url, title, price, price_num, currency, availability, brand,"
    " model, sku, gtin, category, image_paths, image_urls, specs, condition, shipping,"
    " spec_conflicts, first_seen, last_seen)"
    f" VALUES ({', '.join('?' * 21)})"
)


def _json(values) -> str:
    return json.dumps(list(values), default=str) if values else "[]"


def same_work_by_hand(root: Path, batches: list[list], dim: int) -> Timing:
    """Time to write what the store writes for new offers, by hand with the same tools.

    From the same records as the store gets, into the store's own schema (every column, every
    index, foreign keys on), one transaction per batch: the offer rows, one price-history row
    each, one vector row each, the vectors as checksummed log rows (id, values, CRC32) appended
    before the commit, the op sequence and the log's row count; the vectors checked finite and
    scaled to unit length in one NumPy pass; then raw FAISS. It trusts its input (no field
    checks) and knows every offer is new: an upsert also validates the records and looks up
    which offers exist (shop+URL, GTIN, near-duplicate vectors) and their old prices and vectors.
    """
    from cumpair.index import metadata

    root.mkdir()
    conn = metadata.connect(root / "meta.sqlite", readonly=False)
    metadata.migrate(conn, root)
    record = np.dtype([("vid", "<i8"), ("vec", "<f4", (dim,)), ("crc", "<u4")])
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    next_id, written = 1, 0
    with clock() as took, open(root / "vectors.vlog", "wb") as log:
        log.write(bytes(16))  # the header
        for seq, part in enumerate(batches, 1):
            matrix = np.concatenate([v["image"] for _, v in part]).reshape(-1, dim)
            if not np.isfinite(matrix).all():
                raise ValueError("non-finite vector")
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            seen = datetime.now(UTC).isoformat()
            ids = list(range(next_id, next_id + len(part)))
            offers = [
                (
                    offer_id, o.shop, o.url, o.title,
                    None if o.price is None else str(o.price),
                    None if o.price is None else float(o.price),
                    o.currency, o.availability, o.brand, o.model, o.sku, o.gtin, o.category,
                    _json(o.image_paths), _json(o.image_urls),
                    json.dumps(o.specs, sort_keys=True, default=str) if o.specs else "{}",
                    o.condition, _json(o.shipping), _json(o.spec_conflicts), seen, seen,
                )
                for offer_id, (o, _) in zip(ids, part, strict=True)
            ]  # fmt: skip
            vids = np.array(ids, dtype=np.int64) << 8
            rows = np.empty(len(part), dtype=record)
            rows["vid"], rows["vec"] = vids, matrix
            raw = rows.view(np.uint8).reshape(len(rows), record.itemsize)[:, :-4]
            rows["crc"] = np.fromiter(map(zlib.crc32, raw), np.uint32, len(rows))
            conn.execute("BEGIN IMMEDIATE")
            log.write(rows.tobytes())
            log.flush()
            conn.executemany(_OFFER_INSERT, offers)
            conn.executemany(
                "INSERT INTO price_history (offer_id, price, currency, availability, seen_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(o[0], o[4], o[6], o[7], seen) for o in offers],
            )
            conn.executemany(
                "INSERT INTO vectors (space, vector_id, offer_id, ordinal, seq, row)"
                " VALUES ('image', ?, ?, 0, ?, ?)",
                [
                    (v, i, seq, written + n)
                    for n, (v, i) in enumerate(zip(vids.tolist(), ids, strict=True))
                ],
            )
            written += len(ids)
            conn.execute("UPDATE state SET value = ? WHERE key = 'seq'", (seq,))
            conn.execute("UPDATE vector_logs SET rows = ?", (written,))
            conn.execute("COMMIT")
            index.add_with_ids(matrix, vids)
            next_id += len(part)
    conn.close()
    return took[0]


def recrawl_by_hand(root: Path, batches: list[list]) -> Timing:
    """Time to write a recrawl of `same_work_by_hand`'s offers by hand: every offer seen again
    (new price, same vectors), so its row updated (every column but shop and URL) and one
    price-history row added, one transaction per batch. It knows each offer's id and that its
    vectors did not change; an upsert looks the offers up and compares their vectors."""
    from cumpair.index import metadata

    conn = metadata.connect(root / "meta.sqlite", readonly=False)
    columns = [c for c in metadata.OfferRow._fields if c not in ("shop", "url")]
    update = (
        f"UPDATE offers SET {', '.join(c + ' = ?' for c in columns)}, last_seen = ? WHERE id = ?"
    )
    next_id = 1
    with clock() as took:
        for part in batches:
            seen = datetime.now(UTC).isoformat()
            ids = range(next_id, next_id + len(part))
            rows = [
                (
                    o.title, str(o.price), float(o.price), o.currency, o.availability, o.brand,
                    o.model, o.sku, o.gtin, o.category, _json(o.image_paths), _json(o.image_urls),
                    json.dumps(o.specs, sort_keys=True, default=str) if o.specs else "{}",
                    o.condition, _json(o.shipping), _json(o.spec_conflicts), seen, offer_id,
                )
                for offer_id, (o, _) in zip(ids, part, strict=True)
            ]  # fmt: skip
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(update, rows)
            conn.executemany(
                "INSERT INTO price_history (offer_id, price, currency, availability, seen_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(r[-1], r[1], r[3], r[4], seen) for r in rows],
            )
            conn.execute("UPDATE state SET value = value + 1 WHERE key = 'seq'")
            conn.execute("COMMIT")
            next_id += len(part)
    conn.close()
    return took[0]


def repriced(batches: list[list]) -> list[list]:
    """The same offers and vectors, each at a new price (a recrawl where only prices moved)."""
    return [
        [(dataclasses.replace(o, price=o.price + 1), vectors) for o, vectors in part]
        for part in batches
    ]


def add_row(name: str, n: int, baseline: Timing, ours: Timing) -> None:
    """Adds/s of a baseline and the store; ratios by wall clock and by CPU seconds."""
    print(
        f"  {name:<28} hand {n / baseline.wall:>12.1f} vec/s    store {n / ours.wall:>12.1f} vec/s"
        f"    ratio {baseline.wall / ours.wall:5.2f}x (by CPU {baseline.cpu / ours.cpu:5.2f}x)"
    )


def best_qps(
    repeat: int, queries: int, baseline: Callable[[], object], ours: Callable[[], object]
) -> tuple[float, float]:
    """Queries/s of `baseline` and `ours` (each answering `queries` queries a call), best of
    `repeat` interleaved runs: one pass of each is too noisy on shared cores to compare a
    store's fixed cost a query with FAISS's ~1 ms."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for run, spent in zip((baseline, ours), times, strict=True):
            t = time.perf_counter()
            run()
            spent.append(time.perf_counter() - t)
    return queries / min(times[0]), queries / min(times[1])


def bench_overhead(n: int, dim: int, nq: int, root: Path, repeat: int = 3) -> None:
    print(f"\n== overhead at {n} x {dim} (Flat, {nq} queries, k=10)")
    data, queries = np.split(clustered(n + nq, dim), [n])  # queries: same clusters, unseen
    ids = np.arange(1, n + 1, dtype=np.int64) << 8
    raw = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    t = time.perf_counter()
    raw.add_with_ids(data, ids)
    raw_add = n / (time.perf_counter() - t)
    batches = batches_of(data)
    again = repriced(batches)
    options = StoreOptions(upgrade_threshold=10 * n, duplicate_threshold=None)
    thin, same, ours, hand_recrawl, our_recrawl = [], [], [], [], []
    load_before = os.getloadavg()[0]
    for attempt in range(repeat):  # interleaved, best of `repeat`: the cores are shared
        thin.append(durable_by_hand(root / f"by_hand{attempt}", data, ids))
        same.append(same_work_by_hand(root / f"same_work{attempt}", batches, dim))
        hand_recrawl.append(recrawl_by_hand(root / f"same_work{attempt}", again))
        if attempt:
            shutil.rmtree(root / "overhead")
        store = ProductStore.open(root / "overhead", {"image": SpaceSpec(dim, "bench")}, options)
        ours.append(upsert_batches(store, batches))
        our_recrawl.append(upsert_batches(store, again))
        if attempt < repeat - 1:
            store.close()
        shutil.rmtree(root / f"by_hand{attempt}")
        shutil.rmtree(root / f"same_work{attempt}")
    load_after = os.getloadavg()[0]
    store_add = n / Timing.best(ours).wall
    with store:
        raw_qps, store_qps = best_qps(
            repeat, nq, lambda: raw.search(queries, 10), lambda: store.search("image", queries, 10)
        )
        singles = queries[:200]
        raw_single, store_single = best_qps(
            repeat,
            len(singles),
            lambda: [raw.search(q[None], 10) for q in singles],
            lambda: [store.search("image", q, 10) for q in singles],
        )
        # FAISS on one OpenMP thread, as the store searches so few queries (ivf.SERIAL_QUERIES)
        raw_serial, store_again = best_qps(
            repeat,
            len(singles),
            partial(on_one_thread, lambda: [raw.search(q[None], 10) for q in singles]),
            lambda: [store.search("image", q, 10) for q in singles],
        )
    row("add (vectors/s)", raw_add, store_add, "vec/s")
    add_row("add, same durability", n, Timing.best(thin), Timing.best(ours))
    add_row("add, same writes", n, Timing.best(same), Timing.best(ours))
    add_row("recrawl, new prices", n, Timing.best(hand_recrawl), Timing.best(our_recrawl))
    print(f"    (best of {repeat}, interleaved; load average {load_before:.1f} before the adds,")
    print(f"     {load_after:.1f} after. Same durability: raw FAISS, the raw vectors appended to a")
    print("     file, 7-column offer and 3-column history rows by executemany under one")
    print("     unique index; same writes: the store's schema, every column and index, vector rows")
    print("     and checksummed log rows, from the same records, by hand. The store also checks")
    print("     every record and looks up which offers exist by shop+URL and GTIN; on a recrawl")
    print("     it also reads and compares the offers' vectors, which the hand knows unchanged)")
    row("search, batched (QPS)", raw_qps, store_qps, "q/s")
    row("search, one at a time (QPS)", raw_single, store_single, "q/s")
    row("  raw on one thread", raw_serial, store_again, "q/s")


def bench_ivfpq(data: np.ndarray, queries: np.ndarray, root: Path, opq, refine, what: str) -> None:
    """The store's upgraded index beside the best raw FAISS layout, on the same vectors.

    `queries` (unseen, same distribution) are split: half tune each raw layout's nprobe and
    re-rank depth, half measure every figure printed.
    """
    n, dim = data.shape
    print(f"\n== large index at {n} x {dim}, {what} ({len(queries) // 2} test queries, k={K})")
    tune_q, test_q = np.split(queries, 2)
    t = time.perf_counter()
    _, test_truth = faiss.knn(test_q, data, K, metric=faiss.METRIC_INNER_PRODUCT)
    exact_qps = len(test_q) / (time.perf_counter() - t)
    _, tune_truth = faiss.knn(tune_q, data, K, metric=faiss.METRIC_INNER_PRODUCT)
    print(f"  exact search (Flat, brute force): {exact_qps:.0f} q/s")
    nlist = ivf.choose_ivfpq(n, dim, StoreOptions()).nlist  # the store's, for a like comparison
    raw = bench_layouts(data, tune_q, tune_truth, test_q, test_truth, nlist, root)
    store = bench_store(data, test_q, test_truth, root, opq, refine)
    # the store's counterpart: raw vectors off-heap (mmap re-rank), recall target reached
    off_heap = [r for r in raw if "mmap" in r.name]
    if not off_heap:
        print(
            f"  no raw layout reached recall@10 {RECALL_TARGET}; store recall {store.recall:.4f},"
            f" {store.qps:.0f} q/s ({store.qps / exact_qps:.1f}x exact),"
            f" {store.bytes_per_vector:.1f} B/vector"
        )
        return
    best = max([r for r in off_heap if r.recall >= RECALL_TARGET] or off_heap, key=lambda r: r.qps)
    print(f"\n  store {store.name}   vs   best raw FAISS {best.name}")
    side_by_side("recall@10 vs exact", ">= 0.95", store.recall, best.recall, "{:.4f}")
    side_by_side("QPS (x exact Flat)", ">= 50x", store.qps / exact_qps, best.qps / exact_qps,
                 "{:.1f}x")  # fmt: skip
    side_by_side("QPS", "store >= 0.9x raw", store.qps, best.qps, "{:.0f}")
    side_by_side("bytes/vector resident", "<= 32", store.bytes_per_vector,
                 best.bytes_per_vector, "{:.1f}")  # fmt: skip
    side_by_side("build/upgrade s", "", store.build_s, best.build_s, "{:.1f}")
    raw_mib = data.nbytes / 2**20
    side_by_side(f"peak RSS MiB (raw {raw_mib:.0f})", "<= 1.5x raw", store.peak_rss / 2**20,
                 best.peak_rss / 2**20, "{:.0f}")  # fmt: skip
    print(f"  store peak RSS / raw vectors: {store.peak_rss / data.nbytes:.2f}x")


def side_by_side(name: str, target: str, store: float, raw: float, fmt: str) -> None:
    ratio = store / raw if raw else float("nan")
    print(
        f"  {name:<28} {target:<18} store {fmt.format(store):>10}  raw {fmt.format(raw):>10}"
        f"  store/raw {ratio:5.2f}"
    )


def bench_store(data, queries, truth, root: Path, opq, refine) -> Measured:
    """Load the store past its threshold (synchronous upgrade), then search, flush, reload."""
    n, dim = data.shape
    options = StoreOptions(
        upgrade_threshold=n, background_upgrade=False, duplicate_threshold=None,
        use_opq=opq, refine_k_factor=refine,
    )  # fmt: skip
    path = root / "ivfpq"
    with ProductStore.open(path, {"image": SpaceSpec(dim, "bench")}, options) as store:
        t = time.perf_counter()
        load(store, data[:-1])
        print(f"  load {n - 1} vectors into the store: {time.perf_counter() - t:.1f} s")
        with PeakRSS() as rss:
            t = time.perf_counter()
            store.upsert_many(items(data[-1:], n - 1))  # crosses the threshold: upgrade now
            upgrade_s = time.perf_counter() - t
        ids, qps = timed_search(lambda q: store_search(store, q), queries)
        same_index_overhead(store, path, data, queries, root)
        bench_concurrent(store, queries)
        report = store.health()
        health = report["spaces"]["image"]
        # the index as written, and the row map re-ranking finds each vector's log row with
        held = report["files"][health["snapshot"]] + health["row_map_bytes"]
        resident = held / health["vectors"]
        fill = items(clustered(1000, dim, seed=2), n)
        store.upsert_many(fill)
        t = time.perf_counter()
        store.flush()
        flush_s = time.perf_counter() - t
    t = time.perf_counter()
    with ProductStore.open(path, readonly=True) as reopened:
        load_s = time.perf_counter() - t
        assert reopened.count("image") == n + 1000
    shutil.rmtree(path)  # the next data set (real vectors) builds a store of its own here
    p = health["index"]
    print(
        f"  store index {p['factory']} nprobe={p['nprobe']} re-rank x{p['k_factor']}; "
        f"tuned recall (leave-one-out) {p['recall']}; upgrade (train + add + tune + flush) "
        f"{upgrade_s:.1f} s; flush {flush_s:.2f} s, load (verify + replay) {load_s:.2f} s"
    )
    return Measured(p["factory"], recall10(ids, truth), qps, resident, upgrade_s,
                    rss.peak - rss.start, p["nprobe"], p["k_factor"])  # fmt: skip


def same_index_overhead(store, path: Path, data, queries, root: Path, rounds: int = 3) -> None:
    """The store's search beside raw FAISS over the store's own index (its snapshot, the same
    nprobe and re-rank depth), re-ranked from a memory-mapped copy of the vectors: what the
    store adds to a search (row map, the picks' CRCs, hits), interleaved best of `rounds`."""
    health = store.health()["spaces"]["image"]
    p = health["index"]
    index = faiss.read_index(str(path / health["snapshot"]))
    file = root / "same_index.f32"
    data.tofile(file)
    mapped = np.memmap(file, dtype=np.float32, mode="r", shape=data.shape)

    def lookup(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # id offer << 8: row offer-1
        out = mapped[np.maximum((ids >> 8) - 1, 0)]
        out[ids < 0] = 0
        return out, ids >= 0

    params = ivf.search_parameters(index, p["nprobe"])

    def raw(q: np.ndarray):
        _, candidates = index.search(q, max(K, p["recall_k"]) * p["k_factor"], params=params)
        _, ids = ivf.rerank(q, candidates, lookup, K)
        return None, np.where(ids >= 0, (ids >> 8) - 1, -1)

    def one_at_a_time(search):
        return lambda qs: (None, [search(q[None]) for q in qs[:200]])

    runs = {
        "batched": {"raw": raw, "store": lambda q: store_search(store, q)},
        "one at a time": {
            "raw": one_at_a_time(raw), "store": one_at_a_time(lambda q: store_search(store, q)),
        },
    }  # fmt: skip
    print(f"  the store's own index ({p['factory']}, nprobe {p['nprobe']}, x{p['k_factor']}):")
    for what, searches in runs.items():
        best = {name: float("inf") for name in searches}
        for _ in range(rounds):
            for name, search in searches.items():
                t = time.perf_counter()
                search(queries)
                best[name] = min(best[name], time.perf_counter() - t)
        n = len(queries) if what == "batched" else min(200, len(queries))
        row(f"search {what} (QPS)", n / best["raw"], n / best["store"], "q/s")
    file.unlink()


def bench_concurrent(store, queries, clients=(1, 4, 16), per_client: int = 40) -> None:
    """Single-query searches from N client threads at once, straight to the store and through
    `cumpair serve`'s batcher (`BatchedSearches`), best of two; and one client's p50 latency."""
    from cumpair.search.batching import BatchedSearches

    def run(target, n: int) -> float:
        def client(start: int) -> None:
            for q in queries[start : start + per_client]:
                target.search("image", q, K)

        threads = [threading.Thread(target=client, args=(c * per_client,)) for c in range(n)]
        t = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return n * per_client / (time.perf_counter() - t)

    batched = BatchedSearches(store)
    for n in clients:
        direct_qps = max(run(store, n) for _ in range(2))
        batched_qps = max(run(batched, n) for _ in range(2))
        pair(f"{n:>2} concurrent clients (QPS)", direct_qps, batched_qps, "q/s")
    print(f"    (batched: {batched.stats.batched_queries} of {batched.stats.queries} queries shared"
          f" a store search; {batched.stats.searches} store searches)")  # fmt: skip
    latency = {}
    for name, target in (("direct", store), ("batched", batched)):
        samples = []
        for q in queries[:200]:
            t = time.perf_counter()
            target.search("image", q, K)
            samples.append(time.perf_counter() - t)
        latency[name] = 1000 * float(np.median(samples))
    pair("p50 single query, one client", latency["direct"], latency["batched"], "ms")


def pair(name: str, direct: float, batched: float, unit: str) -> None:
    print(
        f"  {name:<28} direct {direct:>10.1f} {unit:<4} batched {batched:>10.1f} {unit:<4} "
        f"ratio {batched / direct:5.2f}x"
    )


def store_search(store: ProductStore, queries: np.ndarray):
    hits = store.search("image", queries, K)
    found = np.array([[h.offer_id - 1 for h in r] + [-1] * (K - len(r)) for r in hits])
    return None, found


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measured:
    """One layout's figures on the held-out test queries, at its tuned parameters."""

    name: str
    recall: float
    qps: float
    bytes_per_vector: float
    build_s: float
    peak_rss: int
    nprobe: int
    k_factor: int


def recall10(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / K


def timed_search(search, queries: np.ndarray) -> tuple[np.ndarray, float]:
    """Ids and queries/s of one batched search (best of two: the CPU is shared)."""
    best, ids = float("inf"), None
    for _ in range(2):
        t = time.perf_counter()
        _, ids = search(queries)
        best = min(best, time.perf_counter() - t)
    return ids, len(queries) / best


def tune(search_at, nlist: int, tune_q: np.ndarray, tune_truth: np.ndarray, depths):
    """Fastest (nprobe, k_factor) reaching the target on held-out tuning queries."""
    best = None
    for k_factor in depths:
        nprobe = 1
        while nprobe <= nlist:
            ids, qps = timed_search(partial(search_at, nprobe=nprobe, k_factor=k_factor), tune_q)
            if recall10(ids, tune_truth) >= RECALL_TARGET + 0.005:
                if best is None or qps > best[2]:
                    best = (nprobe, k_factor, qps)
                break
            nprobe *= 2
    return best


def train_coarse(data: np.ndarray, nlist: int, seed: int = 1234) -> tuple[np.ndarray, float]:
    """k-means centroids of the coarse quantiser (shared by the layouts without OPQ)."""
    t = time.perf_counter()
    pick = np.random.default_rng(seed).choice(len(data), min(len(data), 40 * nlist), False)
    sample = data[np.sort(pick)]
    km = faiss.Kmeans(data.shape[1], nlist, niter=10, seed=seed, spherical=False)
    km.train(sample)
    return km.centroids, time.perf_counter() - t


def build_raw(factory: str, data: np.ndarray, centroids, seed: int = 1234) -> faiss.Index:
    """Train on a sample (coarse centroids given unless OPQ rotates first), add in chunks."""
    index = faiss.index_factory(data.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    inner = faiss.downcast_index(faiss.extract_index_ivf(index))
    inner.cp.seed = seed
    if factory.startswith("OPQ"):
        opq = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
        opq.niter = 10
    else:
        inner.quantizer.add(centroids)
    n_train = min(len(data), max(40 * inner.nlist, 65536))
    index.train(data[np.sort(np.random.default_rng(seed).choice(len(data), n_train, False))])
    for start in range(0, len(data), 65536):
        index.add(data[start : start + 65536])
    return index


def ivf_params(index: faiss.Index, nprobe: int) -> faiss.SearchParametersIVF:
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        hnsw = faiss.SearchParametersHNSW(efSearch=max(32, 2 * nprobe))
        return faiss.SearchParametersIVF(nprobe=nprobe, quantizer_params=hnsw)
    return faiss.SearchParametersIVF(nprobe=nprobe)


def bench_layouts(
    data: np.ndarray,
    tune_q,
    tune_truth,
    test_q,
    test_truth,
    nlist: int,
    root: Path,
    with_opq: bool = False,
) -> list[Measured]:
    """Raw FAISS layouts on the store's data, each tuned for recall@10 on held-out queries."""
    n, dim = data.shape
    m = 32
    raw_file = root / "raw.f32"
    data.tofile(raw_file)
    mapped = np.memmap(raw_file, dtype=np.float32, mode="r", shape=data.shape)

    def lookup(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # the vector log's stand-in
        out = mapped[np.maximum(ids, 0)]
        out[ids < 0] = 0
        return out, ids >= 0

    centroids, kmeans_s = train_coarse(data, nlist)
    print(f"  coarse k-means ({nlist} centroids): {kmeans_s:.1f} s (in the non-OPQ build times)")
    factories = [f"IVF{nlist},PQ{m}x4fs", f"IVF{nlist}_HNSW32,PQ{m}x4fs"]
    if with_opq:  # 10^5 x 512: recall 0.9935 vs 0.9870 without, but 19x the build time
        factories.insert(1, f"OPQ{m},IVF{nlist},PQ{m}x4fs")
    results: list[Measured] = []
    for factory in factories:
        with PeakRSS() as rss:
            t = time.perf_counter()
            index = build_raw(factory, data, centroids)
            build_s = time.perf_counter() - t + (0 if factory.startswith("OPQ") else kmeans_s)
        resident = len(faiss.serialize_index(index)) / n

        def mmap_rerank(q, nprobe, k_factor, index=index):
            _, cand = index.search(q, K * k_factor, params=ivf_params(index, nprobe))
            return ivf.rerank(q, cand, lookup, K)

        best = tune(mmap_rerank, nlist, tune_q, tune_truth, ivf.RERANK_DEPTHS)  # as the store
        if best is None:
            print(f"  {factory}: recall target not reached")
            continue
        nprobe, k_factor, _ = best
        ids, qps = timed_search(partial(mmap_rerank, nprobe=nprobe, k_factor=k_factor), test_q)
        name = f"{factory} + mmap re-rank"
        results.append(
            Measured(name, recall10(ids, test_truth), qps, resident, build_s,
                     rss.peak - rss.start, nprobe, k_factor)
        )  # fmt: skip
        print_measured(results[-1], None)
        if factory == factories[0]:  # the same codes, re-ranked by FAISS from RAM instead
            refine = faiss.IndexRefineFlat(index, faiss.swig_ptr(data))

            def in_ram(q, nprobe, k_factor, refine=refine, index=index):
                params = faiss.IndexRefineSearchParameters(
                    k_factor=k_factor, base_index_params=ivf_params(index, nprobe)
                )
                return refine.search(q, K, params=params)

            ids, qps = timed_search(partial(in_ram, nprobe=nprobe, k_factor=k_factor), test_q)
            results.append(
                Measured(f"{factory} + IndexRefineFlat", recall10(ids, test_truth), qps,
                         resident + dim * 4, build_s, 0, nprobe, k_factor)
            )  # fmt: skip
            print_measured(results[-1], None)
            del refine
        del index
    raw_file.unlink()
    return results


def print_measured(r: Measured, exact_qps: float | None) -> None:
    ratio = f" ({r.qps / exact_qps:5.1f}x exact)" if exact_qps else ""
    print(
        f"  {r.name:<44} recall@10 {r.recall:.4f}  {r.qps:>8.0f} q/s{ratio}  "
        f"{r.bytes_per_vector:6.1f} B/vec  build {r.build_s:6.1f} s  "
        f"peak +{r.peak_rss / 2**20:6.0f} MiB  nprobe {r.nprobe} k_factor {r.k_factor}"
    )


def bench_soak(seconds: float, dim: int, root: Path) -> None:
    print(f"\n== soak: 4 reader threads + 1 writer for {seconds:.0f} s")
    options = StoreOptions(duplicate_threshold=None, flush_interval_s=2)
    with ProductStore.open(root / "soak", {"image": SpaceSpec(dim, "bench")}, options) as store:
        load(store, clustered(2000, dim))
        stop = threading.Event()
        counts = {"searches": 0, "errors": 0}
        written = [2000]
        queries = clustered(16, dim, seed=3)

        def reader():
            while not stop.is_set():
                try:
                    assert len(store.search("image", queries, 5)) == 16
                    counts["searches"] += 1
                except Exception:
                    counts["errors"] += 1

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for th in threads:
            th.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            store.upsert_many(items(clustered(200, dim, seed=written[0]), written[0]))
            written[0] += 200
            store.maybe_flush()
        stop.set()
        for th in threads:
            th.join()
        ok = store.count("image") == written[0] == store.health()["offers"]
        lat = store.health()["spaces"]["image"]["search_latency_ms"]
    print(
        f"  searches {counts['searches']} (errors {counts['errors']}), vectors written "
        f"{written[0]}, counts consistent: {ok}, latency ms {lat}"
    )
    if not ok or counts["errors"]:
        raise SystemExit("soak failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="issue sizes (10^5; 10^6 x 512)")
    parser.add_argument(
        "--quick", action="store_true",
        help="the large-index comparison only, at 10^5 x 512 (synthetic and real vectors)",
    )  # fmt: skip
    parser.add_argument(
        "--real-cache", type=Path, default=Path(tempfile.gettempdir()) / "cumpair_bench_real.npy",
        help="where the real encoder vectors are cached (embedded once, ~5 min CPU)",
    )  # fmt: skip
    parser.add_argument("--only", choices=["overhead", "ivfpq", "soak"])
    parser.add_argument(
        "--repeat", type=int, default=3, help="overhead adds: best of this many interleaved runs"
    )
    parser.add_argument(
        "--opq", choices=["auto", "on", "off"], default="auto",
        help="OPQ rotation before PQ (auto: the store's default for the size)",
    )  # fmt: skip
    parser.add_argument(
        "--refine", type=int, default=StoreOptions().refine_k_factor,
        help="exact re-ranking of k*REFINE IVF-PQ candidates (default: the store's)",
    )  # fmt: skip
    args = parser.parse_args()
    n_over, n_ivf, dim_ivf = (100_000, 1_000_000, 512) if args.full else (20_000, 100_000, 128)
    if args.quick:
        args.only, n_ivf, dim_ivf = "ivfpq", 100_000, 512
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only in (None, "overhead"):
            bench_overhead(n_over, 512 if args.full else 128, 1000, root, args.repeat)
        if args.only in (None, "ivfpq"):
            opq = {"auto": None, "on": True, "off": False}[args.opq]
            data, queries = np.split(clustered(n_ivf + 2000, dim_ivf), [n_ivf])
            bench_ivfpq(data, queries, root, opq, args.refine, "clustered synthetic")
            del data
            if args.full or args.quick:
                real = real_vectors(102_000, args.real_cache)
                data, queries = np.split(real, [100_000])
                bench_ivfpq(data, queries, root, opq, args.refine, "real MiniLM title vectors")
        if args.only in (None, "soak"):
            bench_soak(30 if args.full else 10, 64, root)


if __name__ == "__main__":
    main()
