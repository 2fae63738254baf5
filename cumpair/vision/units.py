"""Unit normalisation through pint: shops print inches, pounds and litres; we compare in
mm, g, ml, GB, W and V. The raw unit spelling found in text is mapped to a pint unit here
and nowhere else.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pint itself loads with the registry: 0.12 s that most searches never use
    import pint

# Spelling in product text (lower-cased, dots removed) -> pint unit expression.
UNIT_ALIASES: dict[str, str] = {
    # length
    "mm": "millimeter", "millimeter": "millimeter", "millimeters": "millimeter",
    "millimetre": "millimeter", "millimetres": "millimeter",
    "cm": "centimeter", "centimeter": "centimeter", "centimeters": "centimeter",
    "centimetre": "centimeter", "centimetres": "centimeter",
    "m": "meter", "meter": "meter", "meters": "meter", "metre": "meter", "metres": "meter",
    "in": "inch", "inch": "inch", "inches": "inch", '"': "inch", "″": "inch", "''": "inch",
    "ft": "foot", "feet": "foot", "foot": "foot", "'": "foot",
    # mass
    "mg": "milligram", "g": "gram", "gr": "gram", "gram": "gram", "grams": "gram",
    "gramm": "gram", "kg": "kilogram", "kgs": "kilogram", "kilo": "kilogram",
    "kilos": "kilogram", "kilogram": "kilogram", "kilograms": "kilogram",
    "lb": "pound", "lbs": "pound", "ib": "pound", "ibs": "pound", "pound": "pound",
    "pounds": "pound",
    "oz": "ounce", "ounce": "ounce", "ounces": "ounce",
    # volume
    "ml": "milliliter", "milliliter": "milliliter", "milliliters": "milliliter",
    "millilitre": "milliliter", "millilitres": "milliliter", "cl": "centiliter",
    "dl": "deciliter", "l": "liter", "liter": "liter", "liters": "liter", "litre": "liter",
    "litres": "liter", "ltr": "liter", "fl oz": "US_fluid_ounce", "floz": "US_fluid_ounce",
    "fl": "US_fluid_ounce", "gal": "US_liquid_gallon", "gallon": "US_liquid_gallon",
    "gallons": "US_liquid_gallon",
    # storage: decimal prefixes, as drives and phones are marketed
    "mb": "megabyte", "gb": "gigabyte", "tb": "terabyte",
    "mo": "megabyte", "go": "gigabyte", "to": "terabyte",  # French octets
    # power and voltage
    "w": "watt", "watt": "watt", "watts": "watt", "kw": "kilowatt",
    "v": "volt", "volt": "volt", "volts": "volt", "kv": "kilovolt", "mv": "millivolt",
}  # fmt: skip

_registry: pint.UnitRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> pint.UnitRegistry:
    """The process-wide pint registry (building one takes ~0.3 s, so it is shared)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                import pint

                _registry = pint.UnitRegistry()
    return _registry


def canonical_unit(raw: str) -> str | None:
    """Map a unit as printed (`Kg`, `lbs.`, `fl. oz`) to a pint unit name, or None."""
    key = re.sub(r"[.\s]+", " ", raw.strip().lower()).strip()
    return UNIT_ALIASES.get(key) or UNIT_ALIASES.get(key.replace(" ", ""))


@lru_cache(maxsize=256)
def _factor(unit: str, target: str) -> float:
    return float(registry().Quantity(1.0, unit).to(target).magnitude)


def convert(value: float, raw_unit: str, target: str) -> float:
    """Convert `value` printed with `raw_unit` into `target` (a pint unit such as 'mm').

    Raises ValueError for an unknown unit or one of another dimension (kg -> mm).
    """
    unit = canonical_unit(raw_unit)
    if unit is None:
        raise ValueError(f"unknown unit {raw_unit!r}")
    import pint  # a known unit is converted with pint's registry, which loads it anyway

    try:
        return value * _factor(unit, target)
    except pint.DimensionalityError as exc:
        raise ValueError(f"cannot convert {raw_unit!r} to {target}") from exc


def parse_number(text: str) -> float:
    """Parse `1.299,5`, `1,299.5`, `2,5` and `1,200` the way a shopper would read them.

    With both separators the last is the decimal point; a lone comma followed by exactly
    three digits groups thousands, otherwise it is a decimal comma.
    """
    text = text.strip().replace(" ", "")
    if "," in text and "." in text:
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif "," in text:
        head, _, tail = text.rpartition(",")
        text = (
            text.replace(",", "")
            if len(tail) == 3 and head.count(",") == 0
            else (text.replace(",", ".") if text.count(",") == 1 else text.replace(",", ""))
        )
    return float(text)
