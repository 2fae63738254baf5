"""Spec extraction on real product texts first, on the demo second, each beside a naive baseline.

Real: (1) 60 hand-checked WDC offer titles (tests/data/vision/real_titles.jsonl): per-field
table and false-positive facts per 1000 titles; (2) brand recall on the 29 saved shop pages of
../shared/data/real/pages/ (title, then title + description), with the shipped brand list alone
and with the brands the store has seen in the *other* pages' structured data; (3) implausible
facts (7,010 litres, 0 GB, 16 m of inches ...) over every WDC title of ../shared/data/real/matching.
Demo: the hand-written texts (tests/data/vision/texts.jsonl), the demo shops' page texts and, with
--labels N, N OCR'd demo labels. The baseline, run on the same texts, is what a user writes in an
afternoon: the title's first word as brand and the first number-with-unit per quantity.

    python3 bench/eval_real_specs.py              # ~20 s on 2 cores
    python3 bench/eval_real_specs.py --labels 8   # also 8 OCR'd demo labels (~15 s more)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from cumpair.vision.brands import shipped_brands  # noqa: E402
from cumpair.vision.evaluation import Scores, values_match  # noqa: E402
from cumpair.vision.specs import extract_specs  # noqa: E402
from cumpair.vision.units import convert, parse_number  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"
HAND_CHECKED = ROOT / "tests" / "data" / "vision" / "real_titles.jsonl"
TEXTS = ROOT / "tests" / "data" / "vision" / "texts.jsonl"

Extractor = Callable[[str], dict[str, Any]]

# ---------------------------------------------------------------------------------------
# The baseline

_NAIVE_UNITS = {
    "dimensions_mm": (r"mm|cm|m|in", "mm"),
    "weight_g": (r"kg|g|lbs?|oz", "g"),
    "volume_ml": (r"ml|cl|l", "ml"),
    "storage_gb": (r"tb|gb|mb", "GB"),
    "power_w": (r"kw|w", "W"),
    "voltage_v": (r"v", "V"),
}


def naive_specs(text: str) -> dict[str, Any]:
    """First word as brand, first number+unit of each kind: the afternoon baseline."""
    out: dict[str, Any] = {}
    words = re.findall(r"[^\W_][\w&.'!-]*", text)
    if words:
        out["brand"] = words[0]
    for name, (units, target) in _NAIVE_UNITS.items():
        match = re.search(rf"(\d+(?:[.,]\d+)?)\s*({units})\b", text, re.IGNORECASE)
        if match:
            value = convert(parse_number(match.group(1)), match.group(2), target)
            out[name] = [value] if name == "dimensions_mm" else value
    return out


def ours(text: str, **kwargs: Any) -> dict[str, Any]:
    found = extract_specs(text, **kwargs).to_dict()
    found.pop("raw", None)
    return found


# ---------------------------------------------------------------------------------------
# Real texts


def _jsonl(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]


def hand_checked(extract: Extractor) -> Scores:
    scores = Scores()
    for case in _jsonl(HAND_CHECKED):
        scores.add(case["id"], extract(case["text"]), case["truth"])
    return scores


def page_texts() -> list[tuple[str, str, str | None]]:
    """(title, description, brand) of every saved page: the hand-checked title of truth.jsonl
    and the page's own description (meta/OpenGraph/JSON-LD), as a shop crawl would read it."""
    from parsel import Selector

    pages = []
    for row in _jsonl(REAL / "pages" / "truth.jsonl"):
        html = (REAL / "pages" / row["file"]).read_text(encoding="utf-8", errors="replace")
        page = Selector(text=html)
        description = (
            page.css('meta[name="description"]::attr(content)').get()
            or page.css('meta[property="og:description"]::attr(content)').get()
            or ""
        )
        pages.append((row["title"][0], " ".join(description.split()), row.get("brand")))
    return pages


def brand_recall(
    pages: list[tuple[str, str, str | None]], extract: Callable[[int, str], dict[str, Any]]
) -> tuple[int, int, int]:
    """(right, wrong, pages with a brand) over the pages."""
    right = wrong = 0
    branded = [(i, p) for i, p in enumerate(pages) if p[2]]
    for index, (title, description, brand) in branded:
        got = extract(index, f"{title}\n{description}" if description else title).get("brand")
        if got is None:
            continue
        if values_match("brand", got, brand):
            right += 1
        else:
            wrong += 1
    return right, wrong, len(branded)


_IMPLAUSIBLE: dict[str, Callable[[Any], bool]] = {
    "volume_ml": lambda v: v > 100_000,  # 100 litres in a title is a tank, 7,010 L a code
    "storage_gb": lambda v: v <= 0 or v > 100_000,
    "weight_g": lambda v: v > 500_000,
    "voltage_v": lambda v: v > 1_000,
    "power_w": lambda v: v > 50_000,
    "dimensions_mm": lambda v: max(v) > 10_000,
}


def wdc_titles() -> list[str]:
    titles: dict[str, None] = {}
    for path in sorted((REAL / "matching" / "wdc").glob("*/*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            for column in line.split("\t")[:2]:
                titles[column.removeprefix("COL title VAL").strip()] = None
    return list(titles)


def implausible(titles: Iterable[str], extract: Extractor) -> tuple[int, int]:
    """(implausible facts, all quantity facts) over `titles`."""
    bad = total = 0
    for title in titles:
        found = extract(title)
        for name, check in _IMPLAUSIBLE.items():
            if name in found:
                total += 1
                bad += check(found[name])
    return bad, total


# ---------------------------------------------------------------------------------------


def macro_f1(scores: Scores) -> float:
    used = [s for s in scores.fields.values() if s.tp + s.fp + s.fn]
    return sum(s.f1 for s in used) / len(used)


def _row(label: str, base: str, value: str) -> None:
    print(f"  {label:<44} {base:>14} {value:>14}")


def real_section() -> None:
    print("== REAL ==")
    cases = _jsonl(HAND_CHECKED)
    ours_scores, base_scores = hand_checked(ours), hand_checked(naive_specs)
    n = len(cases)
    print(f"-- {n} hand-checked WDC titles ({HAND_CHECKED.relative_to(ROOT)})")
    print(ours_scores.table())
    _row("", "baseline", "cumpair")
    per_1000 = [1000 * s.false_positives / n for s in (base_scores, ours_scores)]
    _row("false-positive facts per 1000 titles", f"{per_1000[0]:.0f}", f"{per_1000[1]:.0f}")
    for name in ("brand", "model", "storage_gb"):
        b, o = base_scores.fields[name], ours_scores.fields[name]
        _row(f"{name} precision / recall", f"{b.precision:.2f} / {b.recall:.2f}",
             f"{o.precision:.2f} / {o.recall:.2f}")  # fmt: skip
    _row("macro F1 over stated fields", f"{macro_f1(base_scores):.3f}",
         f"{macro_f1(ours_scores):.3f}")  # fmt: skip

    if not (REAL / "pages").is_dir():
        print(f"\n{REAL} is absent: page and corpus figures skipped")
        return
    pages = page_texts()
    shipped = shipped_brands()

    def with_store(index: int, text: str) -> dict[str, Any]:
        # The brands the store has seen in structured data: those of the other products' pages
        # (a page saved twice, old and new layout, is the same product: left out too).
        title = pages[index][0]
        others = [brand for t, _, brand in pages if brand and t != title]
        return ours(text, brands=shipped.extended(others))

    in_title = [p for p in pages if p[2] and p[2].casefold() in p[0].casefold()]
    print(f"\n-- brand on {len(pages)} real shop pages ({len(in_title)} name it in the title)")
    _row("", "first word", "cumpair")
    for label, subset in (("title only", [(t, "", b) for t, _, b in pages]),
                          ("title + description", pages)):  # fmt: skip
        base = brand_recall(subset, lambda _, text: naive_specs(text.split("\n")[0]))
        alone = brand_recall(subset, lambda _, text: ours(text))
        store = brand_recall(subset, with_store)
        _row(f"{label}: right / wrong of {base[2]}", f"{base[0]} / {base[1]}",
             f"{alone[0]} / {alone[1]}")  # fmt: skip
        _row("   ... knowing the other pages' brands", "", f"{store[0]} / {store[1]}")

    titles = wdc_titles()
    started = time.perf_counter()
    bad, total = implausible(titles, ours)
    seconds = time.perf_counter() - started
    base_bad, base_total = implausible(titles, naive_specs)
    print(f"\n-- implausible quantities over all {len(titles)} WDC titles")
    _row("", "baseline", "cumpair")
    _row("implausible / quantity facts", f"{base_bad} / {base_total}", f"{bad} / {total}")
    _row("ms per title", "", f"{1000 * seconds / len(titles):.2f}")


def demo_section(labels: int) -> None:
    print("\n== DEMO ==")
    cases = _jsonl(TEXTS)
    ours_scores, base_scores = Scores(), Scores()
    for case in cases:
        ours_scores.add(case["id"], ours(case["text"]), case["truth"])
        base_scores.add(case["id"], naive_specs(case["text"]), case["truth"])
    print(f"-- {len(cases)} hand-written texts ({TEXTS.relative_to(ROOT)})")
    _row("", "baseline", "cumpair")
    _row("macro F1", f"{macro_f1(base_scores):.3f}", f"{macro_f1(ours_scores):.3f}")
    _row("false positives", str(base_scores.false_positives), str(ours_scores.false_positives))

    from cumpair.demo.catalog import build_catalog
    from cumpair.demo.images import label_lines

    offers = build_catalog().offers
    contradictions = {"baseline": 0, "cumpair": 0}
    facts = {"baseline": 0, "cumpair": 0}
    for offer in offers:
        page = offer.to_json()
        text = f"{page['title']}\n{page['description']}"
        truth = label_lines(offer)[1]
        truth["materials"] = [{"name": m["name"], "percent": None} for m in truth["materials"]]
        for label, extract in (("baseline", naive_specs), ("cumpair", ours)):
            for name, value in extract(text).items():
                facts[label] += 1
                if name not in truth or not values_match(name, value, truth[name]):
                    contradictions[label] += 1
    print(f"-- {len(offers)} demo shop page texts (title + description)")
    _row("facts contradicting the catalog / facts",
         f"{contradictions['baseline']} / {facts['baseline']}",
         f"{contradictions['cumpair']} / {facts['cumpair']}")  # fmt: skip
    if labels:
        from cumpair.demo.images import render_label
        from cumpair.vision.image_specs import read_image_specs

        step = max(1, len(offers) // labels)
        scores = Scores()
        for index, offer in enumerate(offers[::step][:labels]):
            image, truth = render_label(offer)
            scores.add(str(index), read_image_specs(image, colors=0).specs.to_dict(), truth)
        print(f"-- {labels} OCR'd demo labels (bench/bench_specs.py has the OCR baseline)")
        _row("macro F1", "", f"{macro_f1(scores):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=0, help="OCR'd demo labels to score")
    args = parser.parse_args()
    started = time.perf_counter()
    real_section()
    demo_section(args.labels)
    print(f"\n({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
