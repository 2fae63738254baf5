"""Matching on real offer pairs: WDC product-matching categories, valid split, beside baselines.

For each category of ``../shared/data/real/matching/wdc`` (computers, cameras, watches, shoes)
prints pair precision/recall/F1 on ``valid.txt`` of

* ``tfidf``: the TF-IDF title baseline (cosine of word TF-IDF vectors fitted on the category's
  ``train.txt`` titles, threshold with the best F1 on ``train.txt``);
* ``matcher``: each labelled pair through the learned matcher (`matching.compare`, the model
  shipped or ``--matcher``), brands, title boilerplate and title IDF learned from the valid
  offers as a store learns its own, and the cosine of the offers' MiniLM text vectors (the
  text ingest embeds, `product_text`);
* ``grouping``: every distinct offer of ``valid.txt`` grouped at once (`grouping.group_offers`,
  what users see as products, with the same text vectors; the titles carry no shop, so the
  one-offer-per-shop rule is off) and each labelled pair read off the groups: same group =
  same product;
* ``ingest+products``: the user's path, as subprocesses: every distinct offer of ``valid.txt``
  written as a JSON-lines feed (the title as the pair gives it, a shop of its own per offer:
  WDC titles name no shop, and under the one-offer-per-shop rule one shop could hold no
  product twice; url ``https://wdc.invalid/<category>/<n>``; no price), then ``cumpair ingest
  --allow-missing-price --no-images`` into a fresh index and ``cumpair products --json``; each
  labelled pair read off the export (same ``product_id`` = same product). This adds what the
  direct row lacks: text vectors (their neighbours as candidates, their cosine as a signal),
  specs read from the title, and the store's own grouping (each offer assigned as it comes,
  then, this being a first ingest, one full regroup, which the export shows);
  slow: 90-700 s a category on 2 shared cores, by their load (computers, 3,740 offers: 258 s
  idle, 702 s at load 16, of which ~30-40 s export the ONNX encoders into the fresh index),
  12-40 min for all four; ``--skip-ingest`` leaves it out;
* ``unseen``: with ``--leave-one-out``, the matcher trained on the other three categories'
  train.txt only: how it does on a kind of product it never saw (the held-out sets are such);
* ``memorise``: no matching at all, only memory: a valid pair is the same product when train's
  positive pairs connect its two titles (both titles seen in train). Its note says how many
  valid titles train already holds: where that is most of them (WDC splits share offers), a
  matcher fine-tuned on train can recall offers rather than match them, which the published
  figures below do and the held-out sets (other shops, other products) do not allow;
* the published figure of a supervised matcher fine-tuned per category (Li et al., VLDB 2021,
  on the test split, which is not here).

    python3 bench/eval_real_matching.py                    # 13-40 min on 2 cores
    python3 bench/eval_real_matching.py --skip-ingest      # 3-13 min on 2 cores
    python3 bench/eval_real_matching.py --categories computers  # ~5 min
    python3 bench/eval_real_matching.py --matcher my.json  # an operator's model
    python3 bench/eval_real_matching.py --leave-one-out    # + 4 trainings, ~5 min
    python3 bench/eval_real_matching.py --vectors-cache /tmp/v.npz  # encode the titles once

The matcher, grouping and unseen rows encode the valid titles with MiniLM (11,779 titles, about
10 a second on 2 shared cores at load 12); ``--vectors-cache`` keeps them between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cumpair.search.boilerplate import without_boilerplate
from cumpair.search.features import (
    OfferFeatures,
    clean_text,
    features_from_dict,
    with_learned_brands,
)
from cumpair.search.grouping import GroupingOptions, group_offers
from cumpair.search.matcher_train import (
    LabelledPair,
    best_threshold,
    pair_scores,
    read_pairs,
    train,
)
from cumpair.search.matching import MatchConfig, compare
from cumpair.search.signals import TokenWeights

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "matching" / "wdc"
PUBLISHED_F1 = {"computers": 0.9545, "cameras": 0.9378, "watches": 0.9653, "shoes": 0.9011}


def tfidf_baseline(train, valid) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    def sims(vectorizer, pairs) -> np.ndarray:
        left = vectorizer.transform([clean_text(p.left["title"]) for p in pairs])
        right = vectorizer.transform([clean_text(p.right["title"]) for p in pairs])
        return np.asarray(left.multiply(right).sum(axis=1)).ravel()

    titles = [clean_text(o["title"]) for p in train for o in (p.left, p.right)]
    vectorizer = TfidfVectorizer().fit(titles)
    threshold, _ = best_threshold(sims(vectorizer, train), np.array([p.label for p in train]))
    scores = pair_scores(sims(vectorizer, valid) >= threshold, np.array([p.label for p in valid]))
    return {**scores, "threshold": threshold}


def memorised(train, valid) -> dict[str, float]:
    """Valid pairs judged by train's positive pairs alone (connected titles = same product),
    and the share of valid titles that train holds."""
    root: dict[str, str] = {}

    def find(title: str) -> str:
        root.setdefault(title, title)
        while root[title] != title:
            root[title] = root[root[title]]
            title = root[title]
        return title

    def key(offer) -> str:
        return clean_text(offer["title"]).lower()

    seen = {key(o) for p in train for o in (p.left, p.right)}
    for pair in train:
        if pair.label:
            root[find(key(pair.left))] = find(key(pair.right))
    same = [
        key(p.left) in seen and key(p.right) in seen and find(key(p.left)) == find(key(p.right))
        for p in valid
    ]
    titles = {key(o) for p in valid for o in (p.left, p.right)}
    scores = pair_scores(np.array(same), np.array([p.label for p in valid]))
    return {**scores, "seen": len(titles & seen) / len(titles)}


def raw_titles(valid: list[LabelledPair]) -> dict[str, str]:
    """Each distinct (cleaned) title of `valid` -> the first raw title with it, in order: the
    offers of this bench (WDC gives no offer ids here)."""
    titles: dict[str, str] = {}
    for pair in valid:
        for offer in (pair.left, pair.right):
            titles.setdefault(clean_text(offer["title"]), offer["title"])
    return titles


def offers_of(valid: list[LabelledPair]) -> tuple[list[OfferFeatures], dict[str, int]]:
    """Each distinct title of `valid` as one offer, brands learned from them all."""
    keys = {title: n for n, title in enumerate(raw_titles(valid))}
    features = [features_from_dict({"title": t, "shop": f"o{k}"}, k) for t, k in keys.items()]
    return with_learned_brands(features), keys


class CachedEncoder:
    """The offline text encoder (MiniLM, what ingest embeds with), its vectors kept in `cache`
    (an .npz of texts and vectors) when given, so reruns and trainings encode each text once."""

    name = "all-minilm-l6-v2"

    def __init__(self, cache: Path | None) -> None:
        self.cache = cache
        self.known: dict[str, np.ndarray] = {}
        if cache is not None and cache.is_file():
            with np.load(cache, allow_pickle=True) as stored:
                self.known = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self.known}, key=lambda t: (len(t), t))
        if missing:
            from cumpair.embed import load_encoders

            encoder = load_encoders("offline").text
            for start in range(0, len(missing), 32):
                batch = missing[start : start + 32]
                self.known.update(zip(batch, encoder.encode_texts(batch), strict=True))
            if self.cache is not None:
                # through a handle (np.savez adds ".npz" to a path lacking it: never read back)
                # and a rename, so a run stopped mid-write leaves the old cache whole
                partial = self.cache.with_name(self.cache.name + ".partial")
                with partial.open("wb") as out:
                    np.savez(out, texts=np.array(list(self.known), dtype=object),
                             vectors=np.stack(list(self.known.values())))  # fmt: skip
                partial.replace(self.cache)
        return np.stack([self.known[t] for t in texts]).astype(np.float32)


def text_vectors(valid: list[LabelledPair], encoder: CachedEncoder) -> np.ndarray:
    """Text vectors of `valid`'s offers (rows as `offers_of`), of the text ingest embeds."""
    from cumpair.embed import product_text

    return encoder.encode_texts([product_text({"title": t}) for t in raw_titles(valid).values()])


def direct_scores(
    valid: list[LabelledPair], config: MatchConfig, vectors: np.ndarray
) -> dict[str, float]:
    """Each labelled pair through the matcher, brands, boilerplate and IDF learned from the
    valid offers, text cosine from `vectors`."""
    features, keys = offers_of(valid)
    features = without_boilerplate(features)
    weights = TokenWeights.learn(f.tokens for f in features)
    rows = [(keys[clean_text(p.left["title"])], keys[clean_text(p.right["title"])]) for p in valid]
    verdicts = [
        compare(features[i], features[j], text_sim=float(vectors[i] @ vectors[j]),
                config=config, weights=weights)
        for i, j in rows
    ]  # fmt: skip
    return pair_scores(np.array([v.same for v in verdicts]), np.array([p.label for p in valid]))


def unseen_category(
    data: Path,
    category: str,
    valid: list[LabelledPair],
    vectors: np.ndarray,
    encoder: CachedEncoder | None,
) -> dict[str, float]:
    """The matcher trained without `category` (with `encoder`'s text cosine when given), on
    `category`'s valid pairs."""
    others = [data / c / "train.txt" for c in PUBLISHED_F1 if c != category]
    with tempfile.TemporaryDirectory() as tmp:
        train(others, text_encoder=encoder).save(Path(tmp) / "m.json")
        return direct_scores(valid, MatchConfig(model_path=str(Path(tmp) / "m.json")), vectors)


def grouping_scores(
    valid: list[LabelledPair], config: MatchConfig, vectors: np.ndarray
) -> dict[str, float]:
    """Every distinct offer of `valid` grouped at once (text cosine from `vectors`), each
    labelled pair read off the groups; and the largest group's size."""
    features, keys = offers_of(valid)
    labels = np.array([p.label for p in valid])
    rows = [(keys[clean_text(p.left["title"])], keys[clean_text(p.right["title"])]) for p in valid]
    options = GroupingOptions(one_offer_per_shop=False)
    grouping = group_offers(features, {"text": vectors}, config=config, options=options).labels
    grouped = [grouping[i] == grouping[j] for i, j in rows]
    sizes = np.bincount(list(grouping.values()))
    return {**pair_scores(np.array(grouped), labels), "largest": int(sizes.max())}


def ingest_scores(category: str, valid: list[LabelledPair]) -> dict[str, float]:
    """`valid`'s offers through ``cumpair ingest`` and ``cumpair products --json``; each labelled
    pair scored by whether the export puts both offers in one product."""
    titles = raw_titles(valid)
    url_of = {key: f"https://wdc.invalid/{category}/{n}" for n, key in enumerate(titles)}
    with tempfile.TemporaryDirectory() as tmp:
        feed, index = Path(tmp) / f"{category}.jsonl", Path(tmp) / "index"
        with feed.open("w", encoding="utf-8") as out:
            for n, (key, title) in enumerate(titles.items()):
                row = {"shop": f"wdc-{n}", "url": url_of[key], "title": title}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        cli = [sys.executable, "-m", "cumpair.cli"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        subprocess.run(
            [*cli, "ingest", "--index", str(index), "--allow-missing-price", "--no-images",
             "--progress-every", "100000", str(feed)],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        export = subprocess.run(
            [*cli, "products", "--index", str(index), "--json"],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        ).stdout
    product_of: dict[str, object] = {}
    for line in export.splitlines():
        product = json.loads(line)
        for offer in product["offers"]:  # an ungrouped offer (product_id null) is its own
            product_of[offer["url"]] = product["product_id"] or offer["url"]
    missing = set(url_of.values()) - set(product_of)
    if missing:
        raise RuntimeError(f"{len(missing)} offers missing from the products export")
    sizes: dict[object, int] = {}
    for product in product_of.values():
        sizes[product] = sizes.get(product, 0) + 1
    same = [
        product_of[url_of[clean_text(p.left["title"])]]
        == product_of[url_of[clean_text(p.right["title"])]]
        for p in valid
    ]
    scores = pair_scores(np.array(same), np.array([p.label for p in valid]))
    return {**scores, "largest": max(sizes.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the wdc folder")
    parser.add_argument("--matcher", help="model file (default: the shipped one)")
    parser.add_argument("--categories", nargs="+", default=list(PUBLISHED_F1))
    parser.add_argument(
        "--leave-one-out", action="store_true", help="also train without each category"
    )
    parser.add_argument(
        "--skip-ingest", action="store_true", help="leave out the ingest+products row"
    )
    parser.add_argument("--vectors-cache", type=Path, help="an .npz of encoded titles to reuse")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"eval_real_matching: no real pairs at {args.data} (../shared/data/real missing)")
        return 2
    config = MatchConfig(model_path=args.matcher)
    encoder = CachedEncoder(args.vectors_cache)
    # the unseen rows train as the model measured was trained: with text cosine or without
    train_encoder = encoder if config.model.provenance.get("text_encoder") else None
    print(f"model {config.model.source}, threshold {config.cut}")
    print(f"{'category':<10} {'method':<15} {'P':>6} {'R':>6} {'F1':>6}  notes")
    for category in args.categories:
        started = time.perf_counter()
        train_pairs = list(read_pairs(args.data / category / "train.txt"))
        valid = list(read_pairs(args.data / category / "valid.txt"))
        baseline = tfidf_baseline(train_pairs, valid)
        vectors = text_vectors(valid, encoder)
        direct = direct_scores(valid, config, vectors)
        grouped = grouping_scores(valid, config, vectors)
        seconds = time.perf_counter() - started
        rows = [
            ("tfidf", baseline, f"threshold {baseline['threshold']} chosen on train"),
            ("matcher", direct, f"{len(valid)} valid pairs"),
            ("grouping", grouped, f"largest group {grouped['largest']}, {seconds:.0f}s"),
        ]
        if not args.skip_ingest:
            started = time.perf_counter()
            ingested = ingest_scores(category, valid)
            seconds = time.perf_counter() - started
            note = f"largest product {ingested['largest']}, {seconds:.0f}s"
            rows.append(("ingest+products", ingested, note))
        if args.leave_one_out:
            unseen = unseen_category(args.data, category, valid, vectors, train_encoder)
            rows.append(("unseen", unseen, "trained on the other three categories"))
        memory = memorised(train_pairs, valid)
        rows.append(("memorise", memory, f"{memory['seen']:.0%} of valid titles are in train"))
        for name, s, note in rows:
            print(f"{category:<10} {name:<15} {s['precision']:6.3f} {s['recall']:6.3f} "
                  f"{s['f1']:6.3f}  {note}")  # fmt: skip
        ratio = direct["f1"] / baseline["f1"] if baseline["f1"] else float("inf")
        published = f"{PUBLISHED_F1[category]:6.3f}"
        print(f"{category:<10} {'published':<15} {'':>6} {'':>6} {published}  fine-tuned per"
              f" category, test split; matcher/tfidf F1 ratio {ratio:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
