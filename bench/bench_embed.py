"""Embedding throughput: the crawl's BatchEmbedder stage vs the raw model forward, ONNX vs PyTorch.

Baseline: the raw forward of the default (ONNX) encoders on already-prepared inputs -
`embed_prepared` on framed, turned pixels plus `encode_texts` - in batches. Ours: the
pipeline stage, `BatchEmbedder` fed JPEG bytes + text by 2 threads as the Scrapy pipeline does,
so it also decodes and frames every photo. A second baseline does that same work without the
stage (`encode_images` on the JPEG bytes, batched, one thread): the stage's own cost. Same
inputs and batch size; they are measured in
alternating rounds of one run (a shared machine's load then hits both alike) and the median
ratio is the figure. Defaults take about a minute on 2 shared cores; `--size 1600` shows shop-
sized photos, `-n`/`--rounds` steadier figures. Usage: python bench/bench_embed.py [--help]
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import threading
import time

import numpy as np
from PIL import Image

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.embed import BatchEmbedder, load_encoders, product_text
from cumpair.embed.efficientnet import EfficientNetLite0Encoder
from cumpair.embed.minilm import MiniLMEncoder


def _rate(n: int, run) -> float:
    started = time.perf_counter()
    run()
    return n / (time.perf_counter() - started)


def _batched(n: int, batch: int, run) -> None:
    for start in range(0, n, batch):
        run(slice(start, start + batch))


def _stage(encoders, photos, texts, batch: int, workers: int) -> float:
    """Products/s through BatchEmbedder, fed by `workers` threads as the pipeline's pool would."""
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
    stats = embedder.stats()
    if stats.get("images") != len(photos) or stats.get("texts") != len(texts):
        raise RuntimeError(f"the stage lost inputs: {stats}")
    return len(photos) / elapsed


def _photos(n: int, size: int) -> tuple[list[bytes], list[str]]:
    catalog = build_catalog(n_products=max(n, 10))
    offers = (catalog.offers * (n // len(catalog.offers) + 1))[:n]
    photos = []
    for offer in offers:
        photo = render_product_photo(offer)
        if size != photo.width:
            photo = photo.resize((size, size), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=85)
        photos.append(buffer.getvalue())
    texts = [product_text({"title": o.title, "brand": o.product.brand}) for o in offers]
    return photos, texts


def _backends(photos: list[bytes], texts: list[str], batch: int, threads: int | None) -> None:
    n = len(photos)
    for backend in ("torch", "onnx"):
        encoder = EfficientNetLite0Encoder(backend=backend, threads=threads)
        prepared = np.stack([encoder.prepare_image(p) for p in photos])
        rate = _rate(
            n, lambda e=encoder, x=prepared: _batched(n, batch, lambda s: e.embed_prepared(x[s]))
        )
        print(f"image forward  {backend:5s} {rate:7.1f} img/s")
        text_encoder = MiniLMEncoder(backend=backend, threads=threads)
        rate = _rate(
            n, lambda e=text_encoder: _batched(n, batch, lambda s: e.encode_texts(texts[s]))
        )
        print(f"text  forward  {backend:5s} {rate:7.1f} texts/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=64, help="products (one photo + text each)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    parser.add_argument("--size", type=int, default=480, help="photo side in pixels")
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline/stage rounds")
    parser.add_argument("--skip-backends", action="store_true", help="no PyTorch vs ONNX part")
    args = parser.parse_args()
    photos, texts = _photos(args.n, args.size)
    n, b = args.n, args.batch
    print(f"{n} JPEG photos {args.size}x{args.size} + {n} texts, batch {b}")
    if not args.skip_backends:
        _backends(photos, texts, b, args.threads)

    encoders = load_encoders("offline", threads=args.threads)
    image, text = encoders.image, encoders.text
    started = time.perf_counter()
    prepared = np.stack([image.prepare_image(p) for p in photos])
    prepare_ms = (time.perf_counter() - started) / n * 1000
    print(f"photo preparation (decode + framing + views), one thread: {prepare_ms:.1f} ms/photo")
    _stage(encoders, photos[:b], texts[:b], b, workers=2)  # warm-up: thread pools, allocator
    raws, directs, stages = [], [], []
    for _ in range(args.rounds):
        raw_img = _rate(n, lambda: _batched(n, b, lambda s: image.embed_prepared(prepared[s])))
        raw_txt = _rate(n, lambda: _batched(n, b, lambda s: text.encode_texts(texts[s])))
        raws.append(1 / (1 / raw_img + 1 / raw_txt))
        direct_img = _rate(n, lambda: _batched(n, b, lambda s: image.encode_images(photos[s])))
        directs.append(1 / (1 / direct_img + 1 / raw_txt))
        stages.append(_stage(encoders, photos, texts, b, workers=2))
        print(f"  round: raw {raws[-1]:6.1f}  direct {directs[-1]:6.1f}  stage {stages[-1]:6.1f}"
              f" items/s  ratio {stages[-1] / raws[-1]:.2f}")  # fmt: skip
    raw, direct, stage = (statistics.median(x) for x in (raws, directs, stages))
    ratio = statistics.median(s / r for s, r in zip(stages, raws, strict=True))
    same_work = statistics.median(s / d for s, d in zip(stages, directs, strict=True))
    print(f"baseline raw forward (onnx, images+texts, prepared inputs): {raw:7.1f} items/s")
    print(f"same work without the stage (encode_images on JPEG bytes):  {direct:7.1f} items/s")
    print(f"pipeline stage BatchEmbedder (JPEG bytes + text in):        {stage:7.1f} items/s")
    print(f"ratio stage/raw forward (median of rounds): {ratio:.2f} (target >= 0.9)")
    print(f"ratio stage/same work in one thread:        {same_work:.2f}")
    print(f"  (the stage's CPU beyond the forward: {prepare_ms:.1f} ms of photo preparation per")
    print("   item, which on a machine whose cores the forward already fills comes off its share)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
