"""Plain-text tables for search results and price history (the CLI's default output).

`--json` output is `SearchResponse.to_dict()` as is; this module only lays out text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from cumpair.search.views import OfferView, ProductView

_SPEC_UNITS = {
    "storage_gb": "GB",
    "volume_ml": "ml",
    "power_w": "W",
    "voltage_v": "V",
    "weight_g": "g",
    "dimensions_mm": "mm",
}


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def spec_text(specs: dict[str, Any]) -> str:
    parts = []
    for name, unit in _SPEC_UNITS.items():
        value = specs.get(name)
        if value is None:
            continue
        if isinstance(value, list | tuple):
            parts.append(" x ".join(_num(v) for v in value) + f" {unit}")
        else:
            parts.append(f"{_num(value)} {unit}")
    return ", ".join(parts)


def _money(value: Decimal | None, currency: str | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" + (f" {currency}" if currency else "")


def _change(offer: OfferView) -> str:
    delta = offer.change.delta
    if delta is None:
        return "new" if offer.crawls <= 1 else "-"
    if delta == 0:
        return "="
    return f"{delta:+,.2f}"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _table(header: Sequence[str], rows: list[Sequence[str]], indent: str = "    ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return lines


def format_product(view: ProductView, rank: int | None = None, base_url: str = "") -> str:
    """One product: title line, identity and specs, then its offers cheapest first."""
    head = f"#{rank}  " if rank is not None else ""
    score = f"   (match score {view.score:.3f})" if view.score is not None else ""
    lines = [f"{head}{view.title}{score}  [product {view.product_id}]"]
    identity = [
        f"brand {view.brand}" if view.brand else "",
        f"model {view.model}" if view.model else "",
        f"GTIN {view.gtin}" if view.gtin else "",
        spec_text(view.specs),
    ]
    lines.append("    " + " | ".join(part for part in identity if part))
    currency = next((o.currency for o in view.offers if o.currency), None)
    lines.append(
        f"    {len(view.offers)} offer(s), lowest price seen {_money(view.lowest_price, currency)}"
    )
    for reason in view.reasons:
        lines.append(f"    matched: {reason}")
    rows = [
        (
            o.shop,
            _money(o.price, o.currency),
            o.availability or "-",
            _change(o),
            _money(o.lowest_price),
            _when(o.last_seen),
            base_url + o.url,
        )
        for o in view.offers
    ]
    header = ("shop", "price", "availability", "change", "lowest", "last seen", "url")
    table = _table(header, rows)
    lines.append(table[0])
    for offer, row in zip(view.offers, table[1:], strict=True):
        lines.append(row)
        if offer.explanation is not None:
            lines.append("        why: " + explain_text(offer.explanation))
    return "\n".join(lines)


def explain_text(explanation: dict[str, Any]) -> str:
    rule = explanation.get("rule", "?")
    if rule == "new":
        return "first offer of this product (nothing matched it before)"
    if rule == "ungrouped":
        return "not grouped yet"
    reasons = "; ".join(explanation.get("reasons", []))
    other = explanation.get("matched_offer")
    return f"grouped by {rule} with offer {other}: {reasons}"


def format_results(response: Any) -> str:
    """All products of a `SearchResponse`, or a line saying nothing matched."""
    lines = []
    if response.facts:
        read = ", ".join(
            f"{k} {' '.join(v) if isinstance(v, list) else v}" for k, v in response.facts.items()
        )
        lines.append(f"read from the query: {read}")
    if not response.products:
        lines.append("no matching product")
    for rank, view in enumerate(response.products, 1):
        lines.append(format_product(view, rank))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def format_history(rows: list[tuple[Any, list[Any]]]) -> str:
    """Each offer's price history, oldest crawl first."""
    lines = []
    for record, history in rows:
        lines.append(f"{record.shop}  {record.title}  {record.url}")
        table = [
            (_when(p.seen_at), _money(p.price, p.currency), p.availability or "-") for p in history
        ]
        lines += _table(("seen", "price", "availability"), table or [("-", "-", "-")])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
