"""Trigram title neighbours: the probed search (`candidates._probed_neighbours`) beside the
exact one, on real WDC titles (../shared/data/real/matching/wdc), in one run.

Why: grouping compares each offer with its nearest titles by character trigrams; the exact
sparse search is quadratic (common trigrams make similarities nearly dense), so this measures
what the prefix-filtered search keeps (recall of the exact top k) and what it costs (CPU s,
peak RSS of a fresh process) at the sizes asked. Past the real titles' count the titles are
extended as the review did: a real title with one word swapped for another real title's word
and a shop-like number appended, so the trigram statistics stay those of real titles.

    python3 bench/bench_trigram_neighbours.py --sizes 10000 100000 [--exact-max 20000]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--exact-max", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
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
