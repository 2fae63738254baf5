"""Unit prices ("Grundpreis"): an offer's price per kg, per litre, per 100 g/ml or per piece.

The quantity comes from the title first: a pack ("6 x 500 ml", "Pack of 12", "3er-Pack",
"24 pcs") always counts; a single net quantity ("Coffee beans 1 kg", times the pack's count in
"500 ml, Pack of 3") and the specs' `volume_ml` / `weight_g` count only when the ranking asks
for unit prices (`consumables=True`), since for most goods they are a capacity or the item's
own weight, not what is sold by the unit. Small
quantities (under 250 g or ml) are priced per 100 g/ml, larger ones per kg/l, as shops label them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_UNIT = r"(ml|cl|l|g|kg)"
_MULTI = re.compile(rf"(?<![\w.,])(\d+)\s*[x\u00d7]\s*{_NUMBER}\s*{_UNIT}(?!\w)", re.IGNORECASE)
_SINGLE = re.compile(rf"(?<![\w.,]){_NUMBER}\s*{_UNIT}(?!\w)", re.IGNORECASE)
_PACK = (
    re.compile(r"\b(?:pack|set|box|lot|case)\s+of\s+(\d+)\b", re.IGNORECASE),
    re.compile(
        r"(?<![\w.,])(\d+)\s*-?\s*(?:pack|pk|pcs|pieces|piece|count|ct|stück|stk|"
        r"er[- ]?pack|er[- ]?set|teilig|tlg)(?![\w])",
        re.IGNORECASE,
    ),
)
_TO_BASE = {"ml": ("ml", 1), "cl": ("ml", 10), "l": ("ml", 1000), "g": ("g", 1), "kg": ("g", 1000)}
SMALL = Decimal(250)  # at most this many g/ml: priced per 100 g/ml
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Quantity:
    """What one offer sells: `amount` of `unit` ("g", "ml" or "piece"), and from where."""

    amount: Decimal
    unit: str
    source: str  # "title" or "specs"


@dataclass(frozen=True)
class UnitPrice:
    """A price per `per` ("kg", "l", "100 g", "100 ml", "piece") in the offer's currency."""

    amount: Decimal
    per: str

    def to_dict(self) -> dict[str, str]:
        return {"amount": str(self.amount), "per": self.per}


def offer_quantity(
    title: str | None, specs: Mapping[str, Any] | None, *, consumables: bool = False
) -> Quantity | None:
    """The quantity an offer sells (see the module docstring); None when nothing states one."""
    text = title or ""
    multi = _MULTI.search(text)
    if multi:
        unit, factor = _TO_BASE[multi.group(3).lower()]
        amount = int(multi.group(1)) * _decimal(multi.group(2)) * factor
        return Quantity(amount, unit, "title") if amount > 0 else None
    count = next(
        (int(m.group(1)) for p in _PACK if (m := p.search(text)) and int(m.group(1)) > 1), None
    )
    if not consumables:
        return None if count is None else Quantity(Decimal(count), "piece", "title")
    single = _SINGLE.search(text)
    if single:  # "500 ml, Pack of 3": three times the content
        unit, factor = _TO_BASE[single.group(2).lower()]
        amount = _decimal(single.group(1)) * factor * (count or 1)
        if amount > 0:
            return Quantity(amount, unit, "title")
    if count is not None:
        return Quantity(Decimal(count), "piece", "title")
    for name, unit in (("volume_ml", "ml"), ("weight_g", "g")):
        value = (specs or {}).get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return Quantity(Decimal(str(value)), unit, "specs")
    return None


def _decimal(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def unit_price(price: Decimal | None, quantity: Quantity | None) -> UnitPrice | None:
    """`price` per unit of `quantity`, to the cent; None without either."""
    if price is None or quantity is None:
        return None
    if quantity.unit == "piece":
        amount, per = price / quantity.amount, "piece"
    elif quantity.amount <= SMALL:
        amount, per = price / quantity.amount * 100, f"100 {quantity.unit}"
    else:
        amount, per = price / quantity.amount * 1000, "kg" if quantity.unit == "g" else "l"
    return UnitPrice(amount.quantize(_CENT, rounding=ROUND_HALF_UP), per)
