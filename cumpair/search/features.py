"""What the matcher compares about an offer: canonical GTIN, model codes, brand, specs, tokens.

Shops word the same product differently ("ACME AA-100X Jigsaw 36V", "Jigsaw AA-100X by Acme,
36 V"); this module reduces an offer to comparable facts so `matching` only compares values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cumpair.identifiers import normalize_gtin

# Quantities a title carries ("36V", "256 GB", "1.5 L"): never model codes.
_QUANTITY = re.compile(
    r"^\d+(?:[.,]\d+)?(?:v|w|kw|gb|tb|mb|ml|l|cl|mah|wh|mm|cm|m|in|kg|g|lb|oz|hz|khz|mhz|pcs?|x)$",
    re.IGNORECASE,
)
# A model code is a token mixing letters and digits, possibly with - / . inside ("AA-100X").
_CODE = re.compile(r"\b[A-Za-z0-9]+(?:[-/.][A-Za-z0-9]+)*\b")
_WORD = re.compile(r"[a-z0-9]+")
_NUMBER_UNIT = re.compile(
    r"(\d+(?:[.,]\d+)?)\s+(v|w|kw|gb|tb|ml|l|mah|mm|cm|kg|g)\b", re.IGNORECASE
)
_STOPWORDS = frozenset({"by", "the", "a", "an", "and", "with", "for", "of", "in", "from", "model"})
# Specs whose disagreement proves two offers are different products (relative tolerance):
# capacity and electrical ratings are printed exactly; weights/sizes suffer unit rounding.
NUMERIC_SPECS: dict[str, float] = {
    "storage_gb": 0.01,
    "voltage_v": 0.01,
    "power_w": 0.01,
    "volume_ml": 0.02,
    "weight_g": 0.06,
}


def canonical_code(value: str) -> str:
    """ "aa-100x", "AA 100X" and "AA100X" all become "AA100X" (separators are typography)."""
    return re.sub(r"[^A-Za-z0-9]", "", value).upper()


def model_codes(text: str) -> frozenset[str]:
    """Model-number-like tokens of `text`: letters and digits mixed, not a quantity, >= 4 chars."""
    codes = set()
    for match in _CODE.finditer(text or ""):
        token = match.group(0)
        if _QUANTITY.match(token) or _QUANTITY.match(token.replace(" ", "")):
            continue
        code = canonical_code(token)
        if len(code) >= 4 and any(c.isdigit() for c in code) and any(c.isalpha() for c in code):
            codes.add(code)
    return frozenset(codes)


def title_tokens(text: str) -> frozenset[str]:
    """Lower-case word tokens with quantities glued to their unit ("36 V" -> "36v")."""
    glued = _NUMBER_UNIT.sub(lambda m: m.group(1) + m.group(2), (text or "").lower())
    return frozenset(t for t in _WORD.findall(glued) if t not in _STOPWORDS)


@dataclass(frozen=True)
class OfferFeatures:
    """The comparable facts of one offer (`key` is the offer id in the store)."""

    key: int
    shop: str
    title: str = ""
    gtin: str | None = None
    brand: str | None = None
    models: frozenset[str] = frozenset()
    specs: Mapping[str, float] = field(default_factory=dict)
    colors: frozenset[str] = frozenset()
    tokens: frozenset[str] = frozenset()


def offer_features(
    key: int,
    shop: str,
    title: str = "",
    *,
    gtin: str | None = None,
    brand: str | None = None,
    model: str | None = None,
    specs: Mapping[str, Any] | None = None,
) -> OfferFeatures:
    """Reduce one offer's fields to `OfferFeatures`.

    Model codes are the structured `model` (schema.org MPN, or one read from the page) plus
    codes found in the title: a misread model then cannot hide the title's correct one.
    `specs` is the spec output contract of `cumpair.vision.specs`.
    """
    specs = dict(specs or {})
    brand = brand or specs.get("brand")
    model = model or specs.get("model")
    codes = model_codes(title)
    if model and len(canonical_code(str(model))) >= 3:
        codes |= {canonical_code(str(model))}
    numeric = {}
    for name in NUMERIC_SPECS:
        value = specs.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            numeric[name] = float(value)
    colors = specs.get("colors") or ()
    return OfferFeatures(
        key=int(key),
        shop=shop,
        title=title or "",
        gtin=normalize_gtin(gtin) if gtin else normalize_gtin(specs.get("gtin")),
        brand=" ".join(str(brand).lower().split()) if brand else None,
        models=codes,
        specs=numeric,
        colors=frozenset(str(c).lower() for c in colors if isinstance(c, str)),
        tokens=title_tokens(title),
    )


def features_from_record(record: Any) -> OfferFeatures:
    """Features of a store `OfferRecord` (anything with its attribute names)."""
    return offer_features(
        record.id,
        record.shop,
        record.title,
        gtin=record.gtin,
        brand=record.brand,
        model=record.model,
        specs=record.specs,
    )
