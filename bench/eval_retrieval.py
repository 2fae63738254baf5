"""Retrieval quality of the configured encoders on the demo shops' product photos and titles.

Gallery: one shop's photo (and product text) per product. Image queries: another shop's photo
of the same product through one transformation each (crop, rotation, blur, JPEG 30-70,
brightness/contrast, pasted on a cluttered background). Text queries paraphrase the title.
Prints recall@1/@5 per transformation and overall. Usage: python bench/eval_retrieval.py [-n 80]
"""

from __future__ import annotations

import argparse
import io
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.embed import load_encoders, product_text


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--products", type=int, default=80)
    parser.add_argument("--kind", default="auto", choices=["auto", "offline", "clip"])
    args = parser.parse_args()
    rng = random.Random(0)
    catalog = build_catalog(n_products=args.products)
    encoders = load_encoders(args.kind)
    print(encoders.describe())
    offers = [catalog.offers_for_product(p.product_id) for p in catalog.products]
    gallery = encoders.image.encode_images([render_product_photo(o[0]) for o in offers])
    all_queries = []
    for name, transform in TRANSFORMS.items():
        photos = [transform(render_product_photo(o[1]), rng) for o in offers]
        queries = encoders.image.encode_images(photos)
        all_queries.append(queries)
        print(f"image {name:22s} R@1 {recall(queries, gallery, 1):.3f}"
              f"  R@5 {recall(queries, gallery, 5):.3f}")  # fmt: skip
    stacked = np.concatenate(all_queries)
    tiled = np.concatenate([gallery] * len(TRANSFORMS))
    hits1 = np.mean([(q @ gallery.T).argmax() == i % len(offers) for i, q in enumerate(stacked)])
    print(f"image all transformations  R@1 {hits1:.3f}  (target >= 0.9)  [{len(tiled)} queries]")
    texts = encoders.text.encode_texts(
        [product_text({"title": o[0].title, "brand": o[0].product.brand}) for o in offers]
    )
    queries = encoders.text.encode_texts([paraphrase(p, rng) for p in catalog.products])
    print(f"text paraphrased titles    R@1 {recall(queries, texts, 1):.3f}"
          f"  R@5 {recall(queries, texts, 5):.3f}  (target R@5 >= 0.9)")  # fmt: skip


if __name__ == "__main__":
    main()
