"""Benchmark the indexer's vision stage: specs off photos on threads (baseline) against worker
processes (`cumpair.indexer.vision.VisionStage`), on the same photos in one run.

Real photos first (../shared/data/real/photos/shop, product photos of real shops), demo label
photos second (the demo catalog's rendered labels, text-heavy: what OCR is for). Each offer is
one photo with OCR and colours on, as `cumpair indexer` runs it; the pool is started and warmed
(each worker loads its OCR engines) before the clock starts, so the figures are the steady
rate. Printed per set: photos/s on `--threads` threads, on `--processes` processes, and the
ratio. On a machine with few cores the processes share them with the threads' own engine
threads: say how many cores (and the load) when quoting the figures.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from cumpair.indexer.vision import Photos, VisionStage, default_vision_processes
from cumpair.vision.ocr_types import OcrOptions

ROOT = Path(__file__).resolve().parents[1]
REAL_PHOTOS = ROOT.parent / "shared" / "data" / "real" / "photos" / "shop"


def real_photos(limit: int) -> list[bytes]:
    if not REAL_PHOTOS.is_dir():
        print(f"(no real photos: {REAL_PHOTOS} is absent)")
        return []
    return [p.read_bytes() for p in sorted(REAL_PHOTOS.iterdir())[:limit] if p.is_file()]


def demo_labels(limit: int) -> list[bytes]:
    from cumpair.demo.catalog import build_catalog
    from cumpair.demo.images import render_label

    catalog = build_catalog()
    offers = [o for shop in ("northwind", "cornerstore") for o in catalog.offers_by_shop(shop)]
    out = []
    for offer in offers[:limit]:
        buffer = io.BytesIO()
        render_label(offer)[0].save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def rate(stage: VisionStage, photos: list[bytes]) -> float:
    """Photos/s of `stage` over `photos`, one offer each, after a warm-up batch."""
    offers = [Photos({"shop": "bench", "url": f"u{n}", "title": ""}, [(None, data)])
              for n, data in enumerate(photos)]  # fmt: skip
    stage.specs(offers[: max(1, stage.processes or 1)] * 2)  # every worker loads its engines
    started = time.perf_counter()
    stage.specs(offers)
    return len(offers) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=16, help="photos per set (16)")
    parser.add_argument("--threads", type=int, default=2, help="baseline threads (2)")
    parser.add_argument(
        "--processes",
        type=int,
        default=default_vision_processes() or 2,
        help="worker processes (default: the indexer's default, at least 2)",
    )
    args = parser.parse_args()
    options = {"ocr": True, "ocr_images": 1, "ocr_options": OcrOptions(max_variants=2),
               "colors": 3}  # fmt: skip
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {args.photos} photos per set")
    for name, photos in (("real", real_photos(args.photos)), ("demo", demo_labels(args.photos))):
        if not photos:
            continue
        with VisionStage(processes=0, threads=args.threads, **options) as threads:
            base = rate(threads, photos)
        with VisionStage(processes=args.processes, threads=args.threads, **options) as procs:
            ours = rate(procs, photos)
        print(f"{name}: {args.threads} threads {base:.2f} photos/s; {args.processes} processes "
              f"{ours:.2f} photos/s; ratio {ours / base:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
