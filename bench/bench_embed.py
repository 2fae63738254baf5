"""Embedding throughput: the crawl's BatchEmbedder stage vs the raw model forward, ONNX vs PyTorch.

Same inputs and batch size on both sides of each ratio, measured in one run. Defaults take about
a minute on 2 shared cores; raise -n for steadier figures. Usage: python bench/bench_embed.py
"""

from __future__ import annotations

import argparse
import io
import resource
import threading
import time

import numpy as np

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.embed import BatchEmbedder, load_encoders, product_text
from cumpair.embed.efficientnet import EfficientNetLite0Encoder
from cumpair.embed.minilm import MiniLMEncoder


def _rate(n: int, run) -> float:
    started = time.perf_counter()
    run()
    return n / (time.perf_counter() - started)


def _stage(encoders, photos, texts, batch: int, workers: int) -> tuple[float, float]:
    """Inputs/s through BatchEmbedder, fed by `workers` threads as the pipeline's pool would."""
    embedder = BatchEmbedder(encoders, batch_size=batch, max_wait=0.5)
    chunks = [list(range(w, len(photos), workers)) for w in range(workers)]

    def feed(indices: list[int]) -> None:
        futures = [embedder.submit([photos[i]], texts[i]) for i in indices]
        for future in futures:
            future.result()

    started = time.perf_counter()
    threads = [threading.Thread(target=feed, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    embedder.close()
    elapsed = time.perf_counter() - started
    return len(photos) / elapsed, embedder.stats()["texts"] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=64, help="products (one photo + text each)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    catalog = build_catalog(n_products=max(args.n, 10))
    offers = (catalog.offers * (args.n // len(catalog.offers) + 1))[: args.n]
    photos = []
    for offer in offers:
        buffer = io.BytesIO()
        render_product_photo(offer).save(buffer, "JPEG", quality=85)
        photos.append(buffer.getvalue())
    texts = [product_text({"title": o.title, "brand": o.product.brand}) for o in offers]
    n, b = args.n, args.batch
    print(f"{n} JPEG photos 480x480 + {n} texts, batch {b}")

    for backend in ("torch", "onnx"):
        encoder = EfficientNetLite0Encoder(backend=backend, threads=args.threads)
        prepared = np.stack([encoder.prepare_image(p) for p in photos])
        rate = _rate(n, lambda e=encoder, x=prepared: [e.embed_prepared(x[i : i + b])
                                                       for i in range(0, n, b)])  # fmt: skip
        print(f"image forward  {backend:5s} {rate:7.1f} img/s")
        text_encoder = MiniLMEncoder(backend=backend, threads=args.threads)
        rate = _rate(n, lambda e=text_encoder: [e.encode_texts(texts[i : i + b])
                                                for i in range(0, n, b)])  # fmt: skip
        print(f"text  forward  {backend:5s} {rate:7.1f} texts/s")

    encoders = load_encoders("offline", threads=args.threads)
    prepared = np.stack([encoders.image.prepare_image(p) for p in photos])
    raw_img = _rate(n, lambda: [encoders.image.embed_prepared(prepared[i : i + b])
                                for i in range(0, n, b)])  # fmt: skip
    raw_txt = _rate(n, lambda: [encoders.text.encode_texts(texts[i : i + b])
                                for i in range(0, n, b)])  # fmt: skip
    raw_both = 1 / (1 / raw_img + 1 / raw_txt)
    stage_img, _ = _stage(encoders, photos, texts, b, workers=2)
    print(f"baseline raw forward (onnx, images+texts, decoded inputs): {raw_both:7.1f} items/s")
    print(f"pipeline stage BatchEmbedder (JPEG bytes + text in):       {stage_img:7.1f} items/s")
    print(f"ratio stage/raw: {stage_img / raw_both:.2f} (target >= 0.9)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
