"""OCR speed and accuracy per engine and for the fallback chain, against direct pytesseract.

Images: the demo shops' label images (ground truth: the printed lines) and demo captchas.
Every engine and the chain read the same images in the same run; the baseline is
`pytesseract.image_to_string` (a tesseract subprocess per image), as most scrapers do it.

    python3 bench/bench_ocr.py                 # 16 labels + 16 captchas (~3 min on 2 cores)
    python3 bench/bench_ocr.py --labels 227 --captchas 200 --slow-images 0   # full sizes
    python3 bench/bench_ocr.py --engines tesseract,rapidocr   # skip EasyOCR

EasyOCR is ~1 s/image even on an idle machine, so by default it reads only the first
`--slow-images` images of each kind (0 = all); its row says how many it read.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytesseract
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from cumpair.demo.captcha import captcha_answer, render_captcha
from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import label_lines, render_label
from cumpair.vision.engines import get_engine
from cumpair.vision.ocr import recognize
from cumpair.vision.ocr_types import DEFAULT_ENGINES, OcrOptions


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def char_accuracy(got: str, want: str) -> float:
    got, want = " ".join(got.split()), " ".join(want.split())
    return max(0.0, 1 - edit_distance(got, want) / max(1, len(want)))


def dataset(n_labels: int, n_captchas: int) -> list[tuple[str, Image.Image, str]]:
    offers = build_catalog().offers
    step = max(1, len(offers) // max(1, n_labels))
    items = [
        ("label", render_label(o)[0], "\n".join(label_lines(o)[0]))
        for o in offers[::step][:n_labels]
    ]
    for i in range(n_captchas):
        token = f"{i * 7919:016x}"
        items.append(("captcha", render_captcha(token), captcha_answer(token)))
    return items


def run(name: str, read: Callable[[Image.Image], str], data) -> dict[str, tuple[float, float]]:
    read(data[0][1])  # load models outside the timing
    seconds: dict[str, list[float]] = defaultdict(list)
    accuracy: dict[str, list[float]] = defaultdict(list)
    for kind, image, truth in data:
        started = time.perf_counter()
        text = read(image)
        seconds[kind].append(time.perf_counter() - started)
        if kind == "captcha":
            text = text.replace(" ", "").upper()
        accuracy[kind].append(char_accuracy(text, truth))
    return {k: (float(np.mean(seconds[k])), float(np.mean(accuracy[k]))) for k in seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=16)
    parser.add_argument("--captchas", type=int, default=16)
    parser.add_argument("--slow-images", type=int, default=4, help="EasyOCR images per kind")
    parser.add_argument("--engines", default=",".join(DEFAULT_ENGINES))
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    data = dataset(args.labels, args.captchas)

    def pytesseract_direct(image: Image.Image) -> str:
        return pytesseract.image_to_string(image)

    rows = {"pytesseract (baseline)": run("pytesseract", pytesseract_direct, data)}
    for engine in engines:
        get_engine(engine)
        options = OcrOptions(engines=(engine,), min_confidence=0.0, max_variants=1)
        subset = data
        if engine == "easyocr" and args.slow_images:
            subset = []
            for kind in ("label", "captcha"):
                subset += [d for d in data if d[0] == kind][: args.slow_images]
        name = f"{engine} (1 read{'' if subset is data else f', {len(subset)} images'})"
        rows[name] = run(engine, lambda im, o=options: recognize(im, o).text, subset)
    chain = OcrOptions(engines=tuple(engines))
    rows[f"chain {'>'.join(engines)}"] = run("chain", lambda im: recognize(im, chain).text, data)

    baseline = rows["pytesseract (baseline)"]  # on all images; per-image means compare
    print(f"{len(data)} images ({args.labels} labels, {args.captchas} captchas), one process\n")
    header = f"{'reader':<40} {'kind':<8} {'s/image':>8} {'char acc':>9} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for name, result in rows.items():
        for kind, (seconds, accuracy) in sorted(result.items()):
            ratio = baseline[kind][0] / seconds if seconds else float("inf")
            print(f"{name:<40} {kind:<8} {seconds:8.3f} {accuracy:9.3f} {ratio:8.2f}x")


if __name__ == "__main__":
    main()
