"""Retrieval quality of the configured encoders on the demo shops' product photos and titles.

Gallery: one shop's photo (and product text) per product. Image queries: another shop's photo
of the same product through one transformation each (crop, rotation, blur, JPEG 30-70,
brightness/contrast, pasted on a cluttered background). Text queries paraphrase the title.
Prints recall@1/@5 per transformation and overall, for the photo's own vector (the baseline),
for the multi-view query `SearchService` makes (`cumpair.embed.query`), and for that plus the
keypoint check of the top hits (`cumpair.search.verify`), with the time per query of each.

    PYTHONPATH=. python3 bench/eval_retrieval.py              # 80 products, seed 7 (~5 min)
    PYTHONPATH=. python3 bench/eval_retrieval.py --seed 11    # the confirmation catalog
"""

from __future__ import annotations

import argparse
import io
import random
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.embed import load_encoders, product_text
from cumpair.embed.query import best_over_views, embed_query
from cumpair.search.service import VERIFY_CANDIDATES
from cumpair.search.verify import GeometricVerifier, verified_hits

VERIFY = VERIFY_CANDIDATES  # hits checked by keypoints, as SearchService does


def _jpeg(image: Image.Image, rng: random.Random) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(30, 70))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _cluttered(image: Image.Image, rng: random.Random) -> Image.Image:
    background = Image.fromarray(rng.choice([data.coffee, data.astronaut, data.chelsea])())
    background = background.resize((720, 720))
    side = rng.randint(300, 420)
    background.paste(image.resize((side, side)), (rng.randint(0, 720 - side),) * 2)
    return background


TRANSFORMS = {
    "crop": lambda im, r: im.crop(
        (r.randint(20, 70), r.randint(20, 70), 480 - r.randint(20, 70), 480 - r.randint(20, 70))
    ),
    "rotation": lambda im, r: im.rotate(r.uniform(-20, 20), fillcolor=(255, 255, 255)),
    "blur": lambda im, r: im.filter(ImageFilter.GaussianBlur(r.uniform(1.5, 3))),
    "jpeg": _jpeg,
    "brightness_contrast": lambda im, r: ImageEnhance.Contrast(
        ImageEnhance.Brightness(im).enhance(r.uniform(0.6, 1.4))
    ).enhance(r.uniform(0.6, 1.4)),
    "cluttered_background": _cluttered,
}


def paraphrase(product, rng: random.Random) -> str:
    templates = [
        "{name} by {brand}",
        "{brand} {name} model {model}",
        "a {name} from {brand}",
        "{name} {model}",
    ]
    return rng.choice(templates).format(
        name=product.name.lower(), brand=product.brand.title(), model=product.model
    )


def recall(queries: np.ndarray, gallery: np.ndarray, k: int) -> float:
    top = np.argsort(-(queries @ gallery.T), axis=1)[:, :k]
    return float(np.mean([i in row for i, row in enumerate(top)]))


def ranked_hits(hits: list[tuple[int, float]]) -> list[int]:
    return [key for key, _ in hits]


def photo_rankings(encoder, photo, gallery, verifier, gallery_features):
    """Gallery rows ranked three ways for one query photo, and the seconds each took."""
    started = time.perf_counter()
    views, vectors = embed_query(encoder, photo)
    embed_s = time.perf_counter() - started
    scores = vectors @ gallery.T
    plain = ranked_hits(sorted(enumerate(scores[0].tolist()), key=lambda h: -h[1]))
    started = time.perf_counter()
    per_view = [list(enumerate(row.tolist())) for row in scores]
    fused = best_over_views(per_view, views)
    fuse_s = time.perf_counter() - started
    checked = verified_hits(
        verifier, verifier.features(photo), fused, gallery_features.__getitem__, VERIFY
    )
    check_s = time.perf_counter() - started - fuse_s
    # A single view costs one of the views' share of the model work.
    seconds = (embed_s / len(views), embed_s + fuse_s, embed_s + fuse_s + check_s)
    return (plain, ranked_hits(fused), ranked_hits(checked)), seconds


METHODS = ("photo vector (baseline)", "multi-view query", "multi-view + keypoint check")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--products", type=int, default=80)
    parser.add_argument("--seed", type=int, default=7, help="demo catalog seed")
    parser.add_argument("--kind", default="auto", choices=["auto", "offline", "clip"])
    args = parser.parse_args()
    rng = random.Random(0)
    catalog = build_catalog(n_products=args.products, seed=args.seed)
    encoders = load_encoders(args.kind)
    print(f"{encoders.describe()}; catalog seed {args.seed}, {args.products} products")
    offers = [catalog.offers_for_product(p.product_id) for p in catalog.products]
    gallery_photos = [render_product_photo(o[0]) for o in offers]
    gallery = encoders.image.encode_images(gallery_photos)
    verifier = GeometricVerifier()
    gallery_features = [verifier.features(photo) for photo in gallery_photos]
    ranks: dict[str, list[list[list[int]]]] = {m: [] for m in METHODS}
    seconds: dict[str, list[float]] = {m: [] for m in METHODS}
    truths: list[int] = []
    print(f"{'transformation':<22}" + "".join(f" {m[:27]:>27}" for m in METHODS))
    for name, transform in TRANSFORMS.items():
        per_method: dict[str, list[list[int]]] = {m: [] for m in METHODS}
        for o in offers:
            photo = transform(render_product_photo(o[1]), rng)
            found, took = photo_rankings(encoders.image, photo, gallery, verifier, gallery_features)
            for method, ranking, spent in zip(METHODS, found, took, strict=True):
                per_method[method].append(ranking)
                seconds[method].append(spent)
        truth = list(range(len(offers)))
        truths += truth
        cells = []
        for method in METHODS:
            ranks[method].append(per_method[method])
            r1, r5 = (_recall(per_method[method], truth, k) for k in (1, 5))
            cells.append(f"R@1 {r1:.3f} R@5 {r5:.3f}")
        print(f"{name:<22}" + "".join(f" {c:>27}" for c in cells))
    print(f"\nall transformations ({len(truths)} queries; target R@1 >= 0.9):")
    for method in METHODS:
        flat = [r for group in ranks[method] for r in group]
        r1, r5 = _recall(flat, truths, 1), _recall(flat, truths, 5)
        p50 = 1000 * float(np.median(seconds[method]))
        print(f"  {method:<30} R@1 {r1:.3f}  R@5 {r5:.3f}  p50 {p50:7.1f} ms/query")
    texts = encoders.text.encode_texts(
        [product_text({"title": o[0].title, "brand": o[0].product.brand}) for o in offers]
    )
    queries = encoders.text.encode_texts([paraphrase(p, rng) for p in catalog.products])
    print(f"text paraphrased titles    R@1 {recall(queries, texts, 1):.3f}"
          f"  R@5 {recall(queries, texts, 5):.3f}  (target R@5 >= 0.9)")  # fmt: skip


def _recall(rankings: list[list[int]], truth: list[int], k: int) -> float:
    return float(np.mean([t in r[:k] for r, t in zip(rankings, truth, strict=True)]))


if __name__ == "__main__":
    main()
