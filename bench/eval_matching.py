"""Evaluate cross-shop grouping and photo search on the demo catalog's ground truth.

Prints pairwise precision/recall/F1 of the grouping (with all evidence, without GTINs, and with
neither GTINs nor structured models), a sweep of the learned matcher's probability threshold
(the shipped model's own is marked), and recall@1/@5 of photo queries made from transformed
shop photos. The demo is a regression check (targets of issue 6: F1 >= 0.95, recall@1 >= 0.9);
real offers are measured by bench/eval_real_matching.py.

    python3 bench/eval_matching.py                  # 80 products (~1 min on 2 cores)
    python3 bench/eval_matching.py --products 400   # larger catalog
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.embed import load_encoders, product_text
from cumpair.embed.reindex import spaces_for
from cumpair.index import ProductStore, StoreOptions
from cumpair.search.augment import photo_query
from cumpair.search.demo_index import demo_vectors, index_demo_offers
from cumpair.search.evaluation import (
    demo_records,
    pairwise_scores,
    recall_at,
    record_features,
)
from cumpair.search.grouping import group_offers
from cumpair.search.matching import MatchConfig
from cumpair.search.products import ProductGroups
from cumpair.search.service import VERIFY_CANDIDATES, SearchService

SETTINGS = {
    "all evidence": {},
    "no GTIN": {"hide_gtin": True},
    "no GTIN, no model": {"hide_gtin": True, "hide_model": True},
}
SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


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
        default = MatchConfig().cut
        thresholds = sorted({*SWEEP, default}) if name == "no GTIN, no model" else (default,)
        for threshold in thresholds:
            grouping = group_offers(features, vectors, config=MatchConfig(threshold=threshold))
            s = pairwise_scores(grouping.labels, truth)
            mark = " <- default" if threshold == default else ""
            figures = f"{s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f}"
            print(f"{name:<18} {threshold:>9.2f} {figures}{mark}")
    # Baseline: exact GTIN only (what a matcher without vision or text would do).
    features = [record_features(r) for r in records]
    labels = {f.key: f.gtin or f"offer-{f.key}" for f in features}
    s = pairwise_scores(labels, truth)
    print(f"{'baseline: GTIN only':<28} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f}")


def evaluate_photos(catalog, encoders, queries: int, seed: int, verify: int) -> None:
    """Recall of photo queries through `SearchService` over a real store of every offer (what
    `cumpair search --image` does, OCR off: demo photos carry no text): the photo's vector alone
    (the baseline), that plus the keypoint check, and the default multi-view + keypoint check.
    A hit is the product the grouping put the query's source offer in."""
    offers = catalog.offers
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(offers), size=min(queries, len(offers)), replace=False)
    with tempfile.TemporaryDirectory(prefix="eval-matching-") as tmp:
        store = ProductStore.open(tmp, spaces_for(encoders), StoreOptions(duplicate_threshold=None))
        groups = ProductGroups.open(tmp)
        ids = index_demo_offers(
            store, groups, offers, demo_vectors(offers, encoders), write_photos=True
        )
        store_id = {id(offer): offer_id for offer_id, offer in ids.items()}
        product_of = groups.product_of(ids)
        services = {
            name: SearchService(
                store,
                groups,
                encoder_loader=lambda: encoders,
                ocr=False,
                query_views=views,
                verify_candidates=verify if checked else 0,
            )
            for name, (views, checked) in PHOTO_METHODS.items()
        }
        rankings: dict[str, list[list[int]]] = {name: [] for name in PHOTO_METHODS}
        seconds: dict[str, list[float]] = {name: [] for name in PHOTO_METHODS}
        truth, applied = [], []
        for n, row in enumerate(chosen):
            offer = offers[int(row)]
            image, names = photo_query(render_product_photo(offer), seed + n, subject(offer))
            truth.append(product_of[store_id[id(offer)]])
            applied.append(names)
            for name, service in services.items():
                started = time.perf_counter()
                response = service.search_image(image, k=5)
                seconds[name].append(time.perf_counter() - started)
                rankings[name].append([p.product_id for p in response.products])
        groups.close()
        store.close()
    print(f"photo queries: {len(truth)} over {len(offers)} indexed offers (keypoint check of")
    print(f"the top {verify}); the last row is what SearchService does by default")
    print(f"{'ranking':<36} {'recall@1':>8} {'recall@5':>8} {'p50 ms':>8}")
    for name in PHOTO_METHODS:
        r1, r5 = recall_at(rankings[name], truth, 1), recall_at(rankings[name], truth, 5)
        print(f"{name:<36} {r1:8.3f} {r5:8.3f} {1000 * np.median(seconds[name]):8.1f}")
    print("recall@1 per transformation (queries chain 2-3; each counts under every one it had):")
    baseline, *_, default = PHOTO_METHODS
    for name in sorted({t for names in applied for t in names}):
        picked = [i for i, names in enumerate(applied) if name in names]
        cells = [
            recall_at([rankings[m][i] for i in picked], [truth[i] for i in picked], 1)
            for m in (baseline, default)
        ]
        figures = f"baseline {cells[0]:.3f}  ours {cells[1]:.3f}"
        print(f"  {name:<12} {len(picked):4d} queries  {figures}")


# name: (multi-view query, keypoint check)
PHOTO_METHODS = {
    "photo vector (baseline)": (False, False),
    "photo vector + keypoint check": (False, True),
    "multi-view query + keypoint check": (True, True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=80)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=150, help="photo queries")
    parser.add_argument("--no-images", action="store_true", help="group without image vectors")
    parser.add_argument("--photos-only", action="store_true", help="skip the grouping figures")
    parser.add_argument("--grouping-only", action="store_true", help="skip the photo queries")
    parser.add_argument(
        "--verify", type=int, default=VERIFY_CANDIDATES, help="photo hits checked by keypoints"
    )
    args = parser.parse_args(argv)
    catalog = build_catalog(n_products=args.products, seed=args.seed)
    encoders = load_encoders("offline")
    print(
        f"catalog seed {args.seed}: {len(catalog.products)} products, {len(catalog.offers)} offers"
    )
    if not args.photos_only:
        evaluate_grouping(catalog, encoders, use_images=not args.no_images)
    if not args.grouping_only:
        evaluate_photos(catalog, encoders, args.queries, args.seed, args.verify)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
