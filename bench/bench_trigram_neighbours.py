"""Trigram title neighbours: the probed search (`candidates._probed_neighbours`) beside the
exact one, on real WDC titles (../shared/data/real/matching/wdc), in one run.

Why: grouping compares each offer with its nearest titles by character trigrams; the exact
sparse search is quadratic (common trigrams make similarities nearly dense), so this measures
what the prefix-filtered search keeps (recall of the exact top k) and what it costs (CPU s,
peak RSS of a fresh process) at the sizes asked. Past the real titles' count the titles are
extended as the review did: a real title with one word swapped for another real title's word
and a shop-like number appended, so the trigram statistics stay those of real titles.

    python3 bench/bench_trigram_neighbours.py --sizes 10000 100000 [--exact-max 20000]

`--regroup`: what an incremental regroup pays to find its touched offers' title neighbours
(words and trigrams, 20 each, `candidates.store_title_neighbours`) in a store of that many
offers: through the store's title-term index (`title_terms`), beside reading every title as
before it (the baseline, same run, same store), the share of the baseline's neighbours the
index finds (words: the baseline's are exact; trigrams: its probed search), and what keeping
the index costs an upsert.

    python3 bench/bench_trigram_neighbours.py --regroup --sizes 10000 100000 [--touched 100]

Measured (2026-12-03, one run, load 6-16, 100 touched, 1000 postings a probe): CPU ms per
touched offer through the index 9.5 / 37.2 / 49.7 at 10^4 / 10^5 / 3*10^5, reading every title
(baseline) 23.1 / 143.0 / 494.9; kept of the baseline's neighbours, words 0.998 / 0.999 /
0.943, trigrams 0.961 / 0.979 / 0.915 (the extended titles repeat each real one ~23 times at
3*10^5, so a title's rarest terms have long lists and near-ties fill its top 20). The index's
cost is bounded by 24 probes a kind x 1000 postings, reached near 3*10^5 here; the baseline's
grows with the store. Upserts: 1.1 CPU ms an offer to keep the index at 3*10^5 (337 s to
build), meta.sqlite 27 / 299 / 911 MB. 10^6 was not run (its build: ~25 min CPU here).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: the child is this file, so it gets it too
WDC = ROOT / ".." / "shared" / "data" / "real" / "matching" / "wdc"


def real_titles() -> list[str]:
    """Every distinct offer title of the WDC pair files (all categories, train and valid), as
    grouping compares them (`matcher_train.read_pairs`: one title per tab-separated side;
    `features.clean_text`: no language tags or quotes)."""
    from cumpair.search.features import clean_text
    from cumpair.search.matcher_train import read_pairs

    seen: dict[str, None] = {}
    for path in sorted(WDC.glob("*/*.txt")):
        for pair in read_pairs(path):
            for offer in (pair.left, pair.right):
                seen.setdefault(clean_text(offer.get("title")), None)
    seen.pop("", None)
    if not seen:
        raise SystemExit(f"no WDC titles under {WDC}")
    return list(seen)


def extended(titles: list[str], n: int, seed: int = 0) -> list[str]:
    """`n` titles: the real ones, then real titles with one word swapped and a number added."""
    rng = random.Random(seed)
    words = [w for t in titles for w in t.split()]
    out = titles[:n]
    while len(out) < n:
        parts = rng.choice(titles).split() or ["item"]
        parts[rng.randrange(len(parts))] = rng.choice(words)
        out.append(" ".join(parts) + f" {rng.randrange(10**6)}")
    return out


def _run(method: str, n: int, k: int) -> dict:
    """Time one search in this process (called in a fresh child, so peak RSS is its own)."""
    from cumpair.search import candidates

    titles = extended(real_titles(), n)
    start = time.process_time()
    if method == "exact":
        pairs = _exact(titles, k)
    else:
        pairs = candidates._title_neighbour_pairs(titles, k, characters=True)
    cpu = time.process_time() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"pairs": sorted(pairs), "cpu_s": cpu, "peak_rss_mb": rss}


def _exact(titles: list[str], k: int) -> set[tuple[int, int]]:
    """The exact top-k search over the same trigram rows (the baseline the probing replaced)."""
    from cumpair.search import candidates

    return candidates._exact_neighbours(candidates.title_tfidf(titles, characters=True), k)


def measure(method: str, n: int, k: int) -> dict:
    """One search in a fresh interpreter (its own peak RSS), its pairs back as JSON."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, str(n), str(k)],
        check=True,
        stdout=subprocess.PIPE,  # the child's errors show on stderr
        text=True,
    )
    return json.loads(out.stdout)


class _FullRead:
    """The store as the regroup saw it before the index: every title read (`iter_offers`)."""

    def __init__(self, store) -> None:
        self._store = store

    def iter_offers(self, batch: int = 1000):
        return self._store.iter_offers(batch)


class _Unbounded:
    """A grouping stand-in: `store_title_neighbours` asks it only for the bound's count."""

    def count(self) -> tuple[int, int]:
        return (0, 0)


def _build(path: Path, titles: list[str], index: bool = True) -> float:
    """A store of one offer per title (50 shops), upserted 2000 at a time; its CPU s."""
    from cumpair.index import OfferRecord, ProductStore, StoreOptions, title_terms

    real = title_terms.index_titles
    if not index:
        title_terms.index_titles = lambda conn, ids: None
    try:
        start = time.process_time()
        with ProductStore.open(path, {}, StoreOptions(duplicate_threshold=None)) as store:
            for lo in range(0, len(titles), 2000):
                store.upsert_many(
                    (OfferRecord(shop=f"shop{n % 50}", url=f"http://s/{n}", title=t, price=1), {})
                    for n, t in enumerate(titles[lo : lo + 2000], start=lo)
                )
        return time.process_time() - start
    finally:
        title_terms.index_titles = real


def regroup_rows(n: int, touched: int, root: Path) -> dict:
    """Build a store of `n` offers and time both ways of finding `touched` offers' neighbours."""
    from cumpair.index import ProductStore
    from cumpair.search.candidates import store_title_neighbours
    from cumpair.search.grouping import GroupingOptions

    titles = extended(real_titles(), n)
    path = root / f"store_{n}"
    write_cpu = _build(path, titles) if not path.exists() else float("nan")
    options = GroupingOptions()
    with ProductStore.open(path, readonly=True) as store:
        ids = [r.id for batch in store.iter_offers(5000) for r in batch]
        rng = random.Random(1)
        records = store.get_offers(sorted(rng.sample(ids, touched)))
        timings = {}
        found = {}
        for name, source in (("full read", _FullRead(store)), ("index", store)):
            start = time.process_time()
            found[name] = store_title_neighbours(source, _Unbounded(), records, options)
            timings[name] = time.process_time() - start
        recall = {}  # per kind: the share of the full read's neighbours the index finds
        kinds = {
            "words": GroupingOptions(trigram_neighbours=0),
            "grams": GroupingOptions(title_neighbours=0),
        }
        for kind, only in kinds.items():
            base = store_title_neighbours(_FullRead(store), _Unbounded(), records, only)
            got = store_title_neighbours(store, _Unbounded(), records, only)
            total = sum(len(v) for v in base.values())
            kept = sum(len(v & got.get(k, set())) for k, v in base.items())
            recall[kind] = kept / total if total else 1.0
    size = sum(f.stat().st_size for f in path.iterdir() if f.name.startswith("meta.sqlite"))
    return {
        "offers": n,
        "touched": touched,
        "full_read_cpu_s": timings["full read"],
        "index_cpu_s": timings["index"],
        "recall_words": recall["words"],
        "recall_grams": recall["grams"],
        "build_cpu_s": write_cpu,
        "db_mb": size / 2**20,
    }


def write_cost(n: int, root: Path) -> tuple[float, float]:
    """CPU s to upsert `n` offers with the title index kept and without it."""
    titles = extended(real_titles(), n)
    return _build(root / "with", titles), _build(root / "without", titles, index=False)


def regroup_main(args: argparse.Namespace) -> None:
    import tempfile

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_titles_"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"real titles: {len(real_titles())}; stores under {root}")
    print(
        "| offers | touched | full read CPU s (baseline) | per touched ms | index CPU s |"
        " per touched ms | baseline / index | kept: words | trigrams | build CPU s |"
        " meta.sqlite MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        row = regroup_rows(n, args.touched, root)
        t = row["touched"]
        print(
            f"| {n} | {t} | {row['full_read_cpu_s']:.2f} | {1000 * row['full_read_cpu_s'] / t:.1f}"
            f" | {row['index_cpu_s']:.2f} | {1000 * row['index_cpu_s'] / t:.1f}"
            f" | {row['full_read_cpu_s'] / max(row['index_cpu_s'], 1e-9):.1f}x"
            f" | {row['recall_words']:.3f} | {row['recall_grams']:.3f} | {row['build_cpu_s']:.1f}"
            f" | {row['db_mb']:.0f} |",
            flush=True,
        )
    if args.write_cost:
        with_index, without = write_cost(args.write_cost, root / "write_cost")
        print(
            f"upsert {args.write_cost} offers: {with_index:.1f} CPU s with the title index,"
            f" {without:.1f} without ({with_index / max(without, 1e-9):.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--exact-max", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--regroup", action="store_true", help="the regroup's look-up rows")
    parser.add_argument("--touched", type=int, default=100)
    parser.add_argument("--keep", help="build (or reuse) the stores here")
    parser.add_argument("--write-cost", type=int, default=0, help="offers to time upserts on")
    args = parser.parse_args()
    if args.regroup:
        regroup_main(args)
        return
    if args.child:
        method, n, k = args.child
        print(json.dumps(_run(method, int(n), int(k))))
        return
    print(f"real titles: {len(real_titles())}")
    print("| offers | method | CPU s | exact CPU / this | peak RSS MB | pairs | recall of exact |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        probed = measure("probed", n, args.k)
        exact = measure("exact", n, args.k) if n <= args.exact_max else None
        got = {tuple(p) for p in probed["pairs"]}
        for name, row in (("exact", exact), ("probed", probed)):
            if row is None:
                continue
            truth = {tuple(p) for p in exact["pairs"]} if exact else None
            recall = f"{len(got & truth) / len(truth):.3f}" if truth and name == "probed" else "-"
            ratio = f"{exact['cpu_s'] / row['cpu_s']:.2f}x" if exact and row["cpu_s"] else "-"
            print(
                f"| {n} | {name} | {row['cpu_s']:.1f} | {ratio} | {row['peak_rss_mb']:.0f} | "
                f"{len(row['pairs'])} | {recall} |"
            )


if __name__ == "__main__":
    main()
