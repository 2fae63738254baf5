"""Per-field accuracy of `cumpair extract` on real saved shop pages, beside a naive baseline.

Reads ../shared/data/real/pages (29 real product pages with hand-checked fields in truth.jsonl)
through the same code path as `cumpair extract` with a generic shop config (no selectors), and
the same pages through extruct + price-parser used naively (all syntaxes at once, the first
Product, its first offer's price), the parser a user writes in an afternoon. Pages are split by
whether they carry structured product data. A wrong price is counted apart from a missing one.
The demo shops' pages (rendered from the demo catalog, read with the generic config) follow as
the second figure. Targets (issue 15): >= 0.97 of fields right with structured data, >= 0.85 of
titles and prices right without, no wrong price.

    python3 bench/eval_real_pages.py            # about 30 s on 2 idle cores
    python3 bench/eval_real_pages.py --mistakes # also list every field we got wrong
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import extruct
from price_parser import Price

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cumpair.identifiers import normalize_gtin
from cumpair_scraper.extract_cli import (
    GENERIC_SHOP,
    extract_record,
    page_response,
    project_settings,
)
from cumpair_scraper.extraction import SYNTAXES

PAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "pages"
FIELDS = ("title", "price", "currency", "availability", "brand", "gtin", "sku", "mpn")
DEMO_SHOPS = ("northwind", "bluepeak", "cornerstore")


def _norm(value: Any) -> str | None:
    return " ".join(str(value).split()).casefold() if value not in (None, "") else None


def field_right(name: str, ours: Any, truth: dict[str, Any]) -> bool:
    """Whether one extracted value matches the hand-checked truth (None must stay None)."""
    expected = truth.get(name)
    if name == "title":
        return _norm(ours) in {_norm(t) for t in expected or []} if expected else ours is None
    if name == "price":
        if expected is None:
            return ours is None
        allowed = {Decimal(expected), *(Decimal(p) for p in truth.get("price_also_ok") or [])}
        return ours is not None and Decimal(str(ours)) in allowed
    if name == "sku":
        return _norm(ours) in {_norm(s) for s in expected} if expected else ours is None
    if name == "gtin":
        return (normalize_gtin(ours) if ours else None) == (
            normalize_gtin(expected) if expected else None
        )
    return _norm(ours) == _norm(expected)


def ours(path: Path, url: str, settings) -> tuple[dict[str, Any], bool]:
    """(our fields, whether the page carries structured product data) via `cumpair extract`."""
    record = extract_record(page_response(str(path), url, settings), GENERIC_SHOP, settings)
    structured = any(s in SYNTAXES for s in record["field_sources"].values())
    return {**{k: record.get(k) for k in FIELDS if k != "mpn"}, "mpn": record["model"]}, structured


def baseline(path: Path, url: str) -> dict[str, Any]:
    """extruct + price-parser, naively: the first Product of any syntax, its first offer."""
    try:
        data = extruct.extract(path.read_bytes(), base_url=url, uniform=True)
    except Exception:  # the naive parser loses the page on any syntax error
        return {}
    product = None
    for syntax in ("json-ld", "microdata", "rdfa"):
        for node in data.get(syntax, []):
            for candidate in [node, *(node.get("@graph") or [])]:
                kind = candidate.get("@type") if isinstance(candidate, dict) else None
                if product is None and kind == "Product":
                    product = candidate
    if product is None:
        return {}
    offer = product.get("offers") or {}
    offer = offer[0] if isinstance(offer, list) and offer else offer
    offer = offer if isinstance(offer, dict) else {}
    price = Price.fromstring(str(offer.get("price") or ""))
    brand = product.get("brand")
    return {
        "title": product.get("name"),
        "price": price.amount,
        "currency": offer.get("priceCurrency") or price.currency,
        "availability": str(offer.get("availability") or "").rsplit("/", 1)[-1] or None,
        "brand": brand.get("name") if isinstance(brand, dict) else brand,
        "gtin": product.get("gtin13") or product.get("gtin"),
        "sku": product.get("sku"),
        "mpn": product.get("mpn"),
    }


class Tally:
    """Fields right and prices wrong, per group of pages."""

    def __init__(self) -> None:
        self.right: dict[str, int] = dict.fromkeys(FIELDS, 0)
        self.pages = 0
        self.wrong_prices = 0
        self.missing_prices = 0

    def add(self, values: dict[str, Any], truth: dict[str, Any]) -> list[str]:
        self.pages += 1
        wrong = []
        for name in FIELDS:
            if field_right(name, values.get(name), truth):
                self.right[name] += 1
            else:
                wrong.append(name)
        if "price" in wrong:
            if values.get("price") is None:
                self.missing_prices += 1
            else:
                self.wrong_prices += 1
        return wrong

    def share(self, names: tuple[str, ...] = FIELDS) -> float:
        return sum(self.right[n] for n in names) / max(1, self.pages * len(names))


def report(label: str, tallies: dict[str, Tally]) -> None:
    print(f"\n{label}")
    print(f"{'':24}" + "".join(f"{name:>10}" for name in tallies))
    first = next(iter(tallies.values()))
    print(f"{'pages':24}" + "".join(f"{t.pages:>10}" for t in tallies.values()))
    for name in FIELDS:
        row = "".join(f"{t.right[name] / max(1, t.pages):>10.3f}" for t in tallies.values())
        print(f"{name:24}{row}")
    rows = {
        "all fields": lambda t: f"{t.share():.3f}",
        "titles and prices": lambda t: f"{t.share(('title', 'price')):.3f}",
        "wrong prices": lambda t: str(t.wrong_prices),
        "missing prices": lambda t: str(t.missing_prices),
    }
    for name, cell in rows.items():
        print(f"{name:24}" + "".join(f"{cell(t):>10}" for t in tallies.values()))
    ours_share, base_share = (t.share() for t in tallies.values())
    if first.pages:
        print(f"{'ratio ours / baseline':24}{ours_share / max(base_share, 1e-9):>10.2f}x")


def real_pages(show_mistakes: bool) -> None:
    settings = project_settings()
    truths = [json.loads(line) for line in (PAGES / "truth.jsonl").read_text().splitlines()]
    groups = {
        True: {"ours": Tally(), "baseline": Tally()},
        False: {"ours": Tally(), "baseline": Tally()},
    }
    mistakes = []
    started = time.perf_counter()
    for truth in truths:
        path = PAGES / truth["file"]
        values, structured = ours(path, truth["url"], settings)
        for name in groups[structured]["ours"].add(values, truth):
            mistakes.append((truth["file"], name, values.get(name), truth.get(name)))
        groups[structured]["baseline"].add(baseline(path, truth["url"]), truth)
    elapsed = time.perf_counter() - started
    print(f"real pages: {len(truths)} from {PAGES} ({elapsed:.1f} s, both readers)")
    report("pages with structured data (target >= 0.97 of fields, 0 wrong prices)", groups[True])
    report("pages without structured data (target >= 0.85 of titles and prices)", groups[False])
    if show_mistakes:
        print("\nour mistakes (page, field, ours, truth):")
        for mistake in mistakes:
            print("  ", *mistake)


def demo_pages() -> None:
    """The demo shops' product pages read with the generic config (no selectors)."""
    from scrapy.http import HtmlResponse

    from cumpair.demo.catalog import build_catalog
    from cumpair.demo.pages import bluepeak_product, cornerstore_product, northwind_product

    base = "http://demo.test"
    render = {
        "northwind": lambda o: northwind_product(o, base),
        "bluepeak": lambda o: bluepeak_product(o, base),
        "cornerstore": cornerstore_product,
    }
    settings = project_settings()
    tallies = {"ours": Tally(), "baseline": Tally()}
    catalog = build_catalog(20)
    for shop in DEMO_SHOPS:
        for offer in catalog.offers_by_shop(shop):
            if offer.defect:
                continue  # defects have no single right answer to score
            html = render[shop](offer).encode()
            truth = {
                "title": [offer.title],
                "price": str(offer.price),
                "currency": offer.currency,
                "availability": offer.availability,
                "brand": offer.product.brand,
                "gtin": offer.gtin_printed,
                "sku": [offer.sku],
                "mpn": offer.product.model,
            }
            response = HtmlResponse(base + offer.url_path, body=html, encoding="utf-8")
            record = extract_record(response, GENERIC_SHOP, settings)
            values = {**{k: record.get(k) for k in FIELDS if k != "mpn"}, "mpn": record["model"]}
            tallies["ours"].add(values, truth)
            path = Path(f"/tmp/_demo_{shop}.html")
            path.write_bytes(html)
            tallies["baseline"].add(baseline(path, response.url), truth)
            path.unlink()
    report("demo shops (northwind, bluepeak, cornerstore pages, generic config)", tallies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mistakes", action="store_true", help="list our wrong fields")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo shops' figure")
    args = parser.parse_args()
    if not (PAGES / "truth.jsonl").is_file():
        print(
            f"eval_real_pages: the real pages are absent ({PAGES}/truth.jsonl not found);"
            " they live in ../shared/data/real/pages beside the checkout",
            file=sys.stderr,
        )
        return 2
    real_pages(args.mistakes)
    if not args.no_demo:
        demo_pages()
    return 0


if __name__ == "__main__":
    sys.exit(main())
