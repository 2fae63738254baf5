"""Evaluate cross-shop grouping and photo search on the demo catalog's ground truth.

Prints pairwise precision/recall/F1 of the grouping (with all evidence, without GTINs, and with
similarity alone), the threshold sweep the default was chosen from, and recall@1/@5 of photo
queries made from transformed shop photos. Targets (issue 6): F1 >= 0.95, recall@1 >= 0.9.

    python3 bench/eval_matching.py                  # 80 products (~1 min on 2 cores)
    python3 bench/eval_matching.py --products 400   # larger catalog
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.embed import load_encoders, product_text
from cumpair.embed.query import best_over_views, embed_query
from cumpair.search.augment import photo_query
from cumpair.search.evaluation import (
    demo_records,
    pairwise_scores,
    recall_at,
    record_features,
)
from cumpair.search.grouping import group_offers
from cumpair.search.matching import MatchConfig
from cumpair.search.ranking import rank_products
from cumpair.search.verify import GeometricVerifier, verified_hits

SETTINGS = {
    "all evidence": {},
    "no GTIN": {"hide_gtin": True},
    "similarity only": {"hide_gtin": True, "hide_model": True},
}
SWEEP = (0.6, 0.65, 0.7, 0.74, 0.77, 0.8, 0.85, 0.9)


def subject(offer):
    """The product cut out of its clip-art (RGBA), for queries on a new background."""
    from PIL import Image

    with Image.open(offer.product.clipart) as image:
        art = image.convert("RGBA")
    box = art.getchannel("A").getbbox()
    return art.crop(box) if box else art


def evaluate_grouping(catalog, encoders, use_images: bool) -> None:
    records = demo_records(catalog)
    truth = {r["id"]: r["product"] for r in records}
    started = time.perf_counter()
    vectors = {"text": encoders.text.encode_texts([product_text(r) for r in records])}
    if use_images:
        photos = [render_product_photo(offer) for offer in catalog.offers]
        vectors["image"] = encoders.image.encode_images(photos)
    print(f"encoded {len(records)} offers in {time.perf_counter() - started:.1f}s")
    print(f"{'setting':<18} {'threshold':>9} {'P':>6} {'R':>6} {'F1':>6}")
    for name, hide in SETTINGS.items():
        features = [record_features(r, **hide) for r in records]
        thresholds = SWEEP if name == "similarity only" else (MatchConfig().threshold,)
        for threshold in thresholds:
            grouping = group_offers(features, vectors, config=MatchConfig(threshold=threshold))
            s = pairwise_scores(grouping.labels, truth)
            mark = " <- default" if threshold == MatchConfig().threshold else ""
            figures = f"{s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f}"
            print(f"{name:<18} {threshold:>9.2f} {figures}{mark}")
    # Baseline: exact GTIN only (what a matcher without vision or text would do).
    features = [record_features(r) for r in records]
    labels = {f.key: f.gtin or f"offer-{f.key}" for f in features}
    s = pairwise_scores(labels, truth)
    print(f"{'baseline: GTIN only':<28} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f}")


def evaluate_photos(catalog, encoders, queries: int, seed: int, verify: int) -> None:
    """Recall of photo queries: the photo's vector alone (baseline), with keypoint verification,
    and the multi-view query with and without it (the last is what `SearchService` does)."""
    import faiss

    offers = catalog.offers
    product_ids = sorted({o.product_id for o in offers})
    product_number = {pid: n for n, pid in enumerate(product_ids)}
    photos = [render_product_photo(o) for o in offers]
    # In batches: one call over every photo holds all their activations at once.
    vectors = np.concatenate(
        [encoders.image.encode_images(photos[i : i + 32]) for i in range(0, len(photos), 32)]
    )
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    verifier = GeometricVerifier()
    photo_features = [verifier.features(photo) for photo in photos]
    product_of = {i: product_number[o.product_id] for i, o in enumerate(offers)}
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(offers), size=min(queries, len(offers)), replace=False)
    images, truth = [], []
    for n, row in enumerate(chosen):
        offer = offers[int(row)]
        image, _ = photo_query(photos[int(row)], seed + n, subject(offer))
        images.append(image)
        truth.append(product_number[offer.product_id])
    depth = max(20, verify)
    rankings: dict[str, list[list[int]]] = {name: [] for name in PHOTO_METHODS}
    seconds: dict[str, list[float]] = {name: [] for name in PHOTO_METHODS}
    for image in images:
        started = time.perf_counter()
        views, view_vectors = embed_query(encoders.image, image)
        embed_s = time.perf_counter() - started
        scores, ids = index.search(view_vectors, depth)
        per_view = [
            list(zip(r.tolist(), s.tolist(), strict=True)) for r, s in zip(ids, scores, strict=True)
        ]
        search_s = time.perf_counter() - started - embed_s
        started = time.perf_counter()
        query = verifier.features(image)
        feature_s = time.perf_counter() - started
        one_view = embed_s / len(views) + search_s / len(views)
        for name, hits, base_s in (
            ("photo vector (baseline)", per_view[0], one_view),
            ("multi-view query", best_over_views(per_view, views), embed_s + search_s),
        ):
            rankings[name].append([h.product_id for h in rank_products(hits, product_of)])
            seconds[name].append(base_s)
            started = time.perf_counter()
            hits = verified_hits(verifier, query, hits, photo_features.__getitem__, verify)
            checked = f"{name.split(' (')[0]} + keypoint check"
            rankings[checked].append([h.product_id for h in rank_products(hits, product_of)])
            seconds[checked].append(base_s + feature_s + time.perf_counter() - started)
    print(f"photo queries: {len(images)} over {len(offers)} indexed offers (keypoint check of")
    print(f"the top {verify}); the last row is what SearchService does")
    print(f"{'ranking':<36} {'recall@1':>8} {'recall@5':>8} {'p50 ms':>8}")
    for name in PHOTO_METHODS:
        r1, r5 = recall_at(rankings[name], truth, 1), recall_at(rankings[name], truth, 5)
        print(f"{name:<36} {r1:8.3f} {r5:8.3f} {1000 * np.median(seconds[name]):8.1f}")


PHOTO_METHODS = (
    "photo vector (baseline)",
    "photo vector + keypoint check",
    "multi-view query",
    "multi-view query + keypoint check",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=80)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=150, help="photo queries")
    parser.add_argument("--no-images", action="store_true", help="group without image vectors")
    parser.add_argument("--photos-only", action="store_true", help="skip the grouping figures")
    parser.add_argument("--verify", type=int, default=100, help="photo hits checked by keypoints")
    args = parser.parse_args(argv)
    catalog = build_catalog(n_products=args.products, seed=args.seed)
    encoders = load_encoders("offline")
    print(
        f"catalog seed {args.seed}: {len(catalog.products)} products, {len(catalog.offers)} offers"
    )
    if not args.photos_only:
        evaluate_grouping(catalog, encoders, use_images=not args.no_images)
    evaluate_photos(catalog, encoders, args.queries, args.seed, args.verify)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
