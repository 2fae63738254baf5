"""How often offer titles are read as used/refurbished: real titles, then the demo's, beside a
naive baseline (the same words matched anywhere, without the context rules).

Real: every unique title of the WDC product corpus pairs in ../shared/data/real/matching/wdc
(offers from many shops and languages; they carry no condition labels, so the flagged titles
are printed for a reader to judge). Also the cases that name a product's purpose, not its
condition (each must stay unflagged). Demo: every offer of the default catalog (only the
refurbished rule offer says so).

    python3 bench/eval_condition.py [--show]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cumpair.demo.catalog import build_catalog
from cumpair_scraper.extraction.condition import _ANYWHERE, _ON_THEIR_OWN, title_condition

WDC = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "matching" / "wdc"
PURPOSE = (
    "Renewal Filter for AC-200",
    "Brother Waste Toner Box for used cartridges",
    "Sammelbox für gebrauchte Batterien",
    "Most Used Kitchen Knife",
    "Garden Hose, Can Be Used Outdoors",
    "Gift Box Special Occasion",
    "Carte pour toute occasion",
    "Open Boxing Gloves",
    "Refill kit for refurbished cartridges",
    "Repair Shampoo Damaged Hair",
    "New Balance 574 Sneaker",
)


def _naive():
    words = [w for table in (_ANYWHERE, _ON_THEIR_OWN) for ws in table.values() for w in ws]
    pattern = re.compile(
        r"\b(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b",
        re.IGNORECASE,
    )
    return lambda title: bool(pattern.search(title))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print every flagged real title")
    args = parser.parse_args()
    naive = _naive()
    if WDC.is_dir():
        titles = set()
        for path in sorted(WDC.glob("*/*.txt")):
            for line in path.read_text(encoding="utf-8").splitlines():
                for column in line.split("\t")[:2]:
                    title = column.replace("COL title VAL", "").strip()
                    if title:
                        titles.add(title)
        start = time.perf_counter()
        ours = {t for t in titles if title_condition(t)}
        seconds = time.perf_counter() - start
        theirs = {t for t in titles if naive(t)}
        print(f"real (WDC titles): {len(titles)} titles, {seconds:.2f} s")
        print(f"  flagged: ours {len(ours)}, naive {len(theirs)}; naive only {len(theirs - ours)}")
        if args.show:
            for title in sorted(ours):
                print(f"  {title_condition(title):<11} {title[:120]}")
    else:
        print(f"real: {WDC} is absent (the shared real data), skipped")
    ours_fp = sum(bool(title_condition(t)) for t in PURPOSE)
    naive_fp = sum(naive(t) for t in PURPOSE)
    print(
        f"purpose, not condition: {len(PURPOSE)} titles; flagged: ours {ours_fp}, naive {naive_fp}"
    )
    catalog = build_catalog()
    demo = [o for o in catalog.offers if title_condition(o.title)]
    expected = [o for o in catalog.offers if o.condition is not None]
    print(
        f"demo: {len(catalog.offers)} offers; flagged: ours {len(demo)} (stated {len(expected)}), "
        f"naive {sum(naive(o.title) for o in catalog.offers)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
