"""Plain-text tables for search results and price history (the CLI's default output), and the
money and date texts the web page shows before its script localises them.

`--json` output is `SearchResponse.to_dict()` as is; this module only lays out text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cumpair.search.ranking import CONDITIONS, RankedOffer
from cumpair.search.views import OfferView, ProductView, ranking_text

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


_SPEC_LABELS = {"dominant_colors": "Colours in the photo", "colors": "Colours"}
_UNIT_OF = {"gb": "GB", "ml": "ml", "w": "W", "v": "V", "g": "g", "mm": "mm"}


def spec_label(name: str) -> str:
    """A spec key as a label: "voltage_v" -> "Voltage (V)", "dominant_colors" -> "Colours in
    the photo"."""
    stem, _, suffix = name.rpartition("_")
    unit = _UNIT_OF.get(suffix) if stem else None
    label = _SPEC_LABELS.get(name) or (stem if unit else name).replace("_", " ").capitalize()
    return f"{label} ({unit})" if unit else label


def spec_value_text(value: Any) -> str:
    """One spec value as text: 36.0 -> "36", [10, 20, 5] -> "10 x 20 x 5", materials ->
    "cotton 60%, nylon", colours by name."""
    if isinstance(value, dict):
        name = value.get("name", "")
        percent = value.get("percent")
        return f"{name} {_num(percent)}%" if percent is not None else str(name)
    if isinstance(value, list | tuple):
        if all(isinstance(v, int | float) for v in value):
            return " x ".join(_num(v) for v in value)
        return ", ".join(spec_value_text(v) for v in value)
    return _num(value)


def _money(value: Decimal | None, currency: str | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" + (f" {currency}" if currency else "")


# Currencies written with a symbol before the amount, and their decimals; any other currency
# is written "1,234.56 CHF". The page's script re-renders every price in the browser's locale
# (Intl.NumberFormat), so this is the text without JavaScript and in the CLI's tables.
_SYMBOLS = {"EUR": ("€", 2), "USD": ("$", 2), "GBP": ("£", 2), "JPY": ("¥", 0), "INR": ("₹", 2)}


def money_text(value: Decimal | None, currency: str | None) -> str:
    """A price in its currency's usual form: "€1,234.56", "¥1,235", "1,234.56 CHF"; "-" if none."""
    if value is None:
        return "-"
    symbol, places = _SYMBOLS.get((currency or "").upper(), (None, 2))
    amount = f"{value:,.{places}f}"
    if symbol is None:
        return f"{amount} {currency}" if currency else amount
    return f"-{symbol}{amount[1:]}" if amount.startswith("-") else f"{symbol}{amount}"


def change_text(delta: Decimal | None, currency: str | None) -> str:
    """A price change with its sign ("+€2.00", "-€5.50"), "=" when unchanged, "" when unknown."""
    if delta is None:
        return ""
    if delta == 0:
        return "="
    text = money_text(abs(delta), currency)
    return ("+" if delta > 0 else "-") + text


def when_text(value: datetime | None) -> str:
    """A time in UTC to the minute ("2026-12-01 14:30 UTC"): the page's text before its script
    shows it in the browser's own time zone and locale."""
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


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
    best = view.best
    currency = None if best is None else best.offer.currency
    basis = "" if best is None else f" ({basis_text(best)})"
    lowest, seen = _money(view.lowest_price, currency), _money(view.lowest_price_seen, currency)
    if best is not None and best.shipping is not None and best.offer.price is not None:
        lowest += f" ({_money(best.offer.price + best.shipping, currency)} with shipping)"
    lines.append(
        f"    {len(view.offers)} offer(s), lowest price{basis} {lowest}, lowest price seen {seen}"
    )
    lines.append(f"    ranked: {ranking_text(view.ranking, best)}")
    for reason in view.reasons:
        lines.append(f"    matched: {reason}")
    rows = [
        (
            o.shop,
            _money(o.price, o.currency) + (f" ({o.price_flag})" if o.price_flag else ""),
            _shipping(o),
            _unit(o),
            (o.condition or "New").lower(),
            o.availability or "-",
            _change(o),
            _money(o.lowest_price),
            _when(o.last_seen),
            base_url + o.url,
        )
        for o in view.offers
    ]
    header = (
        "shop", "price", "shipping", "unit price", "condition", "availability", "change",
        "lowest", "last seen", "url",
    )  # fmt: skip
    table = _table(header, rows)
    lines.append(table[0])
    for offer, row in zip(view.offers, table[1:], strict=True):
        lines.append(row)
        if offer.explanation is not None:
            lines.append("        why: " + explain_text(offer.explanation))
    return "\n".join(lines)


def basis_text(best: RankedOffer) -> str:
    """The lowest price's basis (`ProductView.best`): "in stock", "refurbished, in stock"."""
    condition = "" if best.condition == CONDITIONS[0] else f"{best.condition.lower()}, "
    return condition + best.group


def _shipping(offer: OfferView) -> str:
    """Shipping to the chosen country: "free", "4.95", or "?" when the shop states none."""
    if offer.shipping_cost is None:
        return "?"
    return "free" if offer.shipping_cost == 0 else _money(offer.shipping_cost)


def _unit(offer: OfferView) -> str:
    unit = offer.unit_price
    return "-" if unit is None else f"{_money(unit.amount)}/{unit.per}"


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
