"""Per-field precision/recall of spec extraction on clean text and on OCR of label images.

Clean text: tests/data/vision/texts.jsonl (hand-written, labelled). Labels: the demo shops'
generated label images with the renderer's ground truth, read (a) by our OCR chain and
(b) by a direct pytesseract call (the baseline), both followed by the same `extract_specs`.
Prints per-field tables, macro F1 of both readers, seconds per label and the ratios.

    python3 bench/bench_specs.py               # 40 labels (~1 min on 2 cores)
    python3 bench/bench_specs.py --labels 0    # every label of the default catalog (227)
    python3 bench/bench_specs.py --photographed   # labels tilted, blurred, noisy, JPEG 55
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pytesseract

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from cumpair.demo.catalog import build_catalog  # noqa: E402
from cumpair.demo.images import render_label  # noqa: E402
from cumpair.vision.evaluation import Scores, simulate_photo  # noqa: E402
from cumpair.vision.image_specs import read_image_specs  # noqa: E402
from cumpair.vision.specs import extract_specs  # noqa: E402

TEXTS = ROOT / "tests" / "data" / "vision" / "texts.jsonl"


def macro_f1(scores: Scores) -> float:
    used = [s for s in scores.fields.values() if s.tp + s.fp + s.fn]
    return sum(s.f1 for s in used) / len(used)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=40, help="labels to read (0 = all)")
    parser.add_argument(
        "--photographed", action="store_true", help="degrade labels like a phone photo"
    )
    args = parser.parse_args()

    cases = [json.loads(line) for line in TEXTS.read_text(encoding="utf-8").splitlines()]
    clean = Scores()
    started = time.perf_counter()
    for case in cases:
        clean.add(case["id"], extract_specs(case["text"]).to_dict(), case["truth"])
    text_seconds = (time.perf_counter() - started) / len(cases)
    print(f"clean text: {len(cases)} hand-written cases, {text_seconds * 1000:.2f} ms/text")
    print(clean.table(), "\n")

    offers = build_catalog().offers
    if args.labels:
        step = max(1, len(offers) // args.labels)
        offers = offers[::step][: args.labels]
    labels = [render_label(offer) for offer in offers]
    if args.photographed:
        labels = [(simulate_photo(im, seed=i), truth) for i, (im, truth) in enumerate(labels)]
    read_image_specs(labels[0][0], colors=0)  # load engines outside the timing
    pytesseract.image_to_string(labels[0][0])

    ours, base = Scores(), Scores()
    ours_s = base_s = 0.0
    engines: dict[str, int] = {}
    for index, (image, truth) in enumerate(labels):
        started = time.perf_counter()
        result = read_image_specs(image, colors=0)
        ours_s += time.perf_counter() - started
        engines[result.ocr.engine] = engines.get(result.ocr.engine, 0) + 1
        ours.add(str(index), result.specs.to_dict(), truth)
        started = time.perf_counter()
        text = pytesseract.image_to_string(image)
        base_s += time.perf_counter() - started
        base.add(str(index), extract_specs(text).to_dict(), truth)

    n = len(labels)
    kind = "photographed" if args.photographed else "clean"
    print(f"label OCR: {n} {kind} demo labels (4 shops), answers by engine: {engines}")
    print(ours.table(), "\n")
    print(f"{'reader':<30} {'macro F1':>9} {'s/label':>8}")
    print(f"{'pytesseract + extract_specs':<30} {macro_f1(base):9.3f} {base_s / n:8.3f}")
    print(f"{'chain + extract_specs':<30} {macro_f1(ours):9.3f} {ours_s / n:8.3f}")
    print(
        f"ratio (ours / baseline): F1 x{macro_f1(ours) / macro_f1(base):.3f}, "
        f"speed x{base_s / ours_s:.2f}"
    )
    if ours.mistakes:
        print("\nfirst mistakes (case, field, got, want):")
        for mistake in ours.mistakes[:8]:
            print("  ", mistake)


if __name__ == "__main__":
    main()
