"""Specification extraction from product text (page copy or OCR of a label).

`extract_specs(text)` finds dimensions, weight, volume, storage, power, voltage, materials,
colour words, brand, model, SKU and GTIN, converts quantities with pint into mm/g/ml/GB/W/V
and keeps the matched snippets in `raw`. It reports only what the text states: a fact that is
absent or ambiguous is left out rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cumpair.identifiers import normalize_gtin
from cumpair.vision.brands import BrandIndex, BrandMatch, shipped_brands
from cumpair.vision.units import convert, parse_number
from cumpair.vision.vocabulary import MATERIALS, PROSE_MATERIALS, canonical_color

if TYPE_CHECKING:
    from cumpair.vision.color import DominantColor

__all__ = ["Material", "Specs", "extract_specs", "name_brand"]


@dataclass(frozen=True, slots=True)
class Material:
    name: str
    percent: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "percent": self.percent}


@dataclass(slots=True)
class Specs:
    """Facts about one product in the units everybody compares in; None/empty = not stated."""

    dimensions_mm: list[float] | None = None
    weight_g: float | None = None
    package_weight_g: float | None = None  # shipping / gross weight, never the item's own
    volume_ml: float | None = None
    storage_gb: float | None = None
    power_w: float | None = None
    voltage_v: float | None = None
    materials: list[Material] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    brand: str | None = None
    model: str | None = None
    sku: str | None = None
    gtin: str | None = None
    dominant_colors: list[DominantColor] = field(default_factory=list)
    raw: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON output contract: absent facts are omitted."""
        out: dict[str, Any] = {}
        for name in SCALAR_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.dimensions_mm:
            out["dimensions_mm"] = list(self.dimensions_mm)
        if self.materials:
            out["materials"] = [m.to_dict() for m in self.materials]
        if self.colors:
            out["colors"] = list(self.colors)
        if self.dominant_colors:
            out["dominant_colors"] = [c.to_dict() for c in self.dominant_colors]
        if self.raw:
            out["raw"] = {key: list(values) for key, values in self.raw.items()}
        return out

    def note(self, field_name: str, snippet: str) -> None:
        snippets = self.raw.setdefault(field_name, [])
        snippet = " ".join(snippet.split())
        if snippet not in snippets:
            snippets.append(snippet)


SCALAR_FIELDS = (
    "weight_g", "package_weight_g", "volume_ml", "storage_gb", "power_w", "voltage_v",
    "brand", "model", "sku", "gtin",
)  # fmt: skip

# ---------------------------------------------------------------------------------------
# Labels: "Key: value" fields. A value runs to the end of its line or the next label.

_LABELS: dict[str, tuple[str, ...]] = {
    "brand": ("brand name", "brand", "manufacturer", "make"),
    "model": ("item model number", "model number", "model no", "model", "mpn",
              "part number", "part no", "type no"),
    "sku": ("sku", "article number", "article no", "art no", "art nr", "item number",
            "item no", "product code", "product no", "item #", "stock code"),
    "gtin": ("gtin-14", "gtin-13", "gtin-12", "gtin", "ean-13", "ean13", "ean", "upc-a",
             "upc", "barcode"),
    "colors": ("available colours", "available colors", "available in", "colours", "colors",
               "colour", "color", "finish"),
    "materials": ("materials", "material", "fabric", "composition", "made of", "made from",
                  "crafted from", "built from", "shell", "upper"),
    "weight_g": ("item weight", "net weight", "net wt", "weight", "wt", "artikelgewicht",
                 "nettogewicht", "produktgewicht", "gewicht", "poids net", "poids"),
    # The parcel's weight and size are not the product's: kept apart / left out.
    "package_weight_g": ("shipping weight", "package weight", "packaging weight",
                         "parcel weight", "gross weight", "versandgewicht",
                         "verpackungsgewicht", "paketgewicht", "bruttogewicht",
                         "poids d'expédition", "poids du colis", "poids brut"),
    "package_dimensions": ("package dimensions", "packaging dimensions", "shipping dimensions",
                           "parcel dimensions", "verpackungsmaße", "verpackungsabmessungen",
                           "paketmaße", "dimensions du colis"),
    "dimensions_mm": ("product dimensions", "dimensions", "dimension",
                      "measurements", "dims", "size"),
    "volume_ml": ("capacity", "volume", "contents", "content"),
    "storage_gb": ("internal storage", "storage capacity", "storage", "ssd", "hdd", "rom"),
    "power_w": ("rated power", "power output", "wattage", "power", "output"),
    "voltage_v": ("input voltage", "rated voltage", "voltage"),
}  # fmt: skip

# Phrases that introduce a value without any separator.
_CUES = frozenset({"available in", "made of", "made from", "crafted from", "built from"})
# Labels whose separator may be missing ("Model ABC-123", "EAN 4006381333931").
_LOOSE_LABELS = {"model", "sku", "gtin", "colors"}
_ABBREVIATIONS = {"no", "nr", "wt"}  # "Model No.", "Art.-Nr.", "Net Wt."
_LABEL_FIELD = {label: f for f, labels in _LABELS.items() for label in labels}
_label_alternation = "|".join(
    re.escape(label).replace(r"\ ", r"[\s.\-]*")
    + (r"\.?" if label.split()[-1] in _ABBREVIATIONS else "")
    for label in sorted(_LABEL_FIELD, key=len, reverse=True)
)
_LABEL_RE = re.compile(
    rf"(?<![\w])(?P<label>{_label_alternation})(?![\w])\s*(?:\((?P<unit>[^)]{{1,12}})\))?"
    # OCR turns a colon into ";" or "." ("Capacity. 500 ml"): a dot counts before a number.
    r"\s*(?P<sep>[:;#=]|-(?=\s)|\.(?=\s*\d))?\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    value: str
    start: int  # value span in the normalised text
    end: int
    unit: str | None  # "Dimensions (cm): ..." -> "cm"
    snippet: str  # label and value as printed, for Specs.raw


def _labelled_fields(text: str) -> list[_Field]:
    fields: list[_Field] = []
    for line_match in re.finditer(r"[^\n]+", text):
        line, offset = line_match.group(), line_match.start()
        matches = [m for m in _LABEL_RE.finditer(line) if _is_label(m, line)]
        for index, match in enumerate(matches):
            end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
            value = line[match.end() : end]
            value = re.split(r"\s[|•]\s|\s{3,}|;\s|\.\s+(?=[A-Z])", value)[0].strip(" ,;|.\t")
            if not value:
                continue
            name = _LABEL_FIELD[_normal_label(match.group("label"))]
            label = _normal_label(match.group("label"))
            if not match.group("sep") and name not in _LOOSE_LABELS and label not in _CUES:
                continue
            start = offset + match.end()
            snippet = line[match.start() : match.end()] + value
            fields.append(
                _Field(name, value, start, start + len(value), match.group("unit"), snippet)
            )
    return fields


def _normal_label(label: str) -> str:
    key = re.sub(r"[\s.\-]+", " ", label.lower()).strip()
    if key in _LABEL_FIELD:
        return key
    for candidate in _LABEL_FIELD:  # "Art.-Nr" -> "art nr", "gtin-13" keeps its hyphen
        if re.sub(r"[\s.\-]+", " ", candidate) == key:
            return candidate
    return key


def _is_label(match: re.Match[str], line: str) -> bool:
    label = _normal_label(match.group("label"))
    if match.group("sep") or label in _CUES or match.group("label").endswith("."):
        return True  # "Net Wt. 2 kg": an abbreviation's dot marks a label as well as a colon
    # Without a separator a label only counts when it starts the line or follows punctuation,
    # so "the model is light" is not a model field.
    before = line[: match.start()].rstrip()
    return label in {k for k, f in _LABEL_FIELD.items() if f in _LOOSE_LABELS} and (
        not before or before[-1] in ",.;|(•-"
    )


# ---------------------------------------------------------------------------------------
# Quantities

_NUM = r"\d+(?:[.,]\d+)*"
_LENGTH_UNITS = (
    r"(?:millimet(?:er|re)s?|centimet(?:er|re)s?|met(?:er|re)s?|inch(?:es)?|feet|foot"
    r"|mm|cm|ft|(?-i:in)\b|m\b|\"|'')"
)
_AXIS = r"(?:\s*\(?[WHDLwhdl]\)?(?![A-Za-z]))?"
_TIMES = r"\s*[xX*]\s*"  # the multiplication sign is normalised to "x" first
_DIM_RE = re.compile(
    rf"(?<![\w.,])(?P<a>{_NUM})\s*(?P<ua>{_LENGTH_UNITS})?{_AXIS}{_TIMES}"
    rf"(?P<b>{_NUM})\s*(?P<ub>{_LENGTH_UNITS})?{_AXIS}"
    rf"(?:{_TIMES}(?P<c>{_NUM})\s*(?P<uc>{_LENGTH_UNITS})?{_AXIS})?"
)
_AXIS_DIM_RE = re.compile(
    rf"(?:(?<![\w])(?P<word>height|width|depth|length|diameter)\s*[:=]?\s*"
    # A letter glued to its number ("H110M", "W4100013") is a model code unless a metric
    # length unit follows ("H30cm"): only "H 30 cm" / "H: 30 cm" may use any unit.
    rf"|(?<![\w\-/])(?P<letter>[HWDLØ])(?P<gap>\s*[:=]\s*|\s+)?)(?P<n>{_NUM})\s*"
    rf"(?P<u>{_LENGTH_UNITS})",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Quantity:
    value: float
    unit: str
    start: int
    end: int
    snippet: str


# A number glued to a letter-led word by "-" or "/" belongs to a code: DCS-7010L, E5-2650L,
# LQ-139LB, f/4L (an aperture). A code may go on after the unit: GA-110GB-1AER.
_CODE_BEFORE = re.compile(r"(?<![\w])[A-Za-z][\w]*[-/]$")
_CODE_AFTER = re.compile(r"-(?=[A-Za-z]*\d)\w")
# Memory cards print read/write speeds as "90R/45W": MB/s, not watts.
_READ_SPEED_BEFORE = re.compile(r"(?<![\w.])\d+\s*R\s*/\s*$")
# One-letter units glued to a four-digit integer are model numbers, not 7010 litres or
# 90118 volts ("DCS 7010L", "G 90118V"); watts reach four digits (a 2000W kettle), so W stays.
_CODE_LETTER_UNITS = frozenset({"l", "v"})
# Lens titles print the aperture after the focal length: "70-200mm 2.8L IS" is f/2.8, L-series,
# and "EF 24-105L IS USM" names the lens line.
_APERTURE_BEFORE = re.compile(r"(?:\d\s*mm\s+|\b[fF]\s*/?\s*|1:)$")
_LENS_AFTER = re.compile(r"\s+(?:IS|USM|II|III|DO|STM|Macro)\b")
# "NB 5L", "DCS 7010L", "PC 158L": a short capitals code with a spaced-out suffix.
_CODE_WORD_BEFORE = re.compile(r"(?<![\w])[A-Z]{2,3}\s$")


def _is_code_part(text: str, match: re.Match[str]) -> bool:
    """True when a number-and-unit match is really part of a model code or an aperture."""
    before = text[max(0, match.start() - 24) : match.start()]
    if _CODE_BEFORE.search(before) or _CODE_AFTER.match(text, match.end()):
        return True
    if _READ_SPEED_BEFORE.search(before):
        return True
    number, unit = match.group("n"), match.group("u")
    glued = text[match.end("n") : match.start("u")] == ""
    long_number = re.fullmatch(r"\d{4,}", number) is not None
    after_code_word = unit.isupper() and _CODE_WORD_BEFORE.search(before) is not None
    if unit.lower() in _CODE_LETTER_UNITS and glued and (long_number or after_code_word):
        return True
    return unit.lower() == "l" and bool(
        _APERTURE_BEFORE.search(before) or _LENS_AFTER.match(text, match.end())
    )


def _quantities(text: str, pattern: re.Pattern[str], target: str) -> list[_Quantity]:
    found = []
    for match in pattern.finditer(text):
        if _is_code_part(text, match):
            continue
        try:
            numbers = [parse_number(n) for n in re.findall(_NUM, match.group("n"))]
            value = convert(max(numbers), match.group("u"), target)
        except ValueError:
            continue
        if value <= 0:
            continue  # "NAS server 0 GB" ships without drives: no capacity is stated
        found.append(_Quantity(value, match.group("u"), match.start(), match.end(), match.group()))
    return found


def _unit_pattern(
    units: str, *, flags: int = re.IGNORECASE, after: str = "", joiner: str = r"\s*"
) -> re.Pattern:
    # A range such as "100-240 V" keeps both numbers; the caller reports the upper one.
    return re.compile(
        rf"(?<![\w.,])(?P<n>{_NUM}(?:\s*[-~]\s*{_NUM})?){joiner}(?P<u>{units})(?![\w/²³]){after}",
        flags,
    )


# "Ib"/"ib" is how OCR engines read a sans-serif "lb"; no other unit is spelled that way. A bare
# capital "G" is accepted here and filtered later (5G is not five grams).
_WEIGHT_RE = re.compile(
    rf"(?<![\w.,])(?P<n>{_NUM})\s*"
    r"(?P<u>(?i:kgs?|kilo(?:gram)?s?|grams?|gr|mg|lbs?|pounds?|oz|ounces?)|g|G|[Ii]bs?)"
    r"(?![\w/²³])"
)
_VOLUME_RE = _unit_pattern(
    r"fl\.?\s*oz|millilit(?:er|re)s?|lit(?:er|re)s?|ltr|gallons?|gal|ml|cl|dl|l"
)
# OCR reads "ml" as "mi"/"mI"; only trusted inside a field labelled Capacity/Volume/Contents,
# where "500 mi" cannot mean miles.
_OCR_VOLUME_RE = _unit_pattern(r"m[iI1]", flags=0)
_OCR_UNIT_FIXES = {"volume_ml": (_OCR_VOLUME_RE, "ml")}
# French shops print octets: "SSD 1 To", "8Go" (capitalised, so "up to 3" is no terabyte).
# Server drives are sold as "36-GB" / "72.8-GB".
_STORAGE_RE = _unit_pattern(r"TB|GB|MB|(?-i:[GTM]o)", after=r"(?!\s*/\s*s)", joiner=r"(?:\s*|-)")
_POWER_RE = _unit_pattern(r"kW|watts?|W", flags=0, after=r"(?!\s*[x*])")
_VOLTAGE_RE = _unit_pattern(r"kV|mV|volts?|V", flags=0)
_RAM_AFTER = re.compile(
    r"\s*(?:of\s+)?(?:ram|memory|arbeitsspeicher|g?ddr\d?\w*|lpddr\d?\w*|vram"
    r"|(?:total\s+)?(?:l[1-3]\s+)?(?:smart\s+)?cache|buffer)\b",
    re.IGNORECASE,
)
_RAM_BEFORE = re.compile(r"\b(?:ram|memory)\s*[:=]?\s*$", re.IGNORECASE)
# A memory module's size is not storage: titles naming DIMMs, DDR generations or PC3-12800
# speeds and no drive word describe RAM ("Corsair 16GB 2x8GB DDR3-1600 CL10").
_MEMORY_MODULE = re.compile(
    r"\b(?:g?ddr\d\w*|lpddr\d\w*|s?o?-?dimm|[ru]dimm|sdram|pc[234]l?-\d{4,5}\w*|cl\d{1,2}"
    r"|\d{4}\s*mhz)\b",
    re.IGNORECASE,
)
_DRIVE_WORDS = (
    r"(?:ssd|hdd|emmc|nvme|flash|storage|speicher\w*|stockage|hard\s*(?:disk|drive)"
    r"|festplatte|disque|sd(?:hc|xc)?|micro\s*sd\w*|cf|compact\s*flash|memory\s+card"
    r"|speicherkarte|usb)\b"
)
_DRIVE_AFTER = re.compile(rf"\s*(?:internal\s+|interne?\s+)?{_DRIVE_WORDS}", re.IGNORECASE)
_DRIVE_ANYWHERE = re.compile(rf"\b{_DRIVE_WORDS}", re.IGNORECASE)


def _pick(quantities: list[_Quantity], fields: list[_Field], name: str) -> _Quantity | None:
    """Prefer a quantity inside a field labelled for `name`, else the first one."""
    for quantity in quantities:
        if any(f.name == name and f.start <= quantity.start < f.end for f in fields):
            return quantity
    return quantities[0] if quantities else None


def _inside_label(position: int, fields: list[_Field], name: str) -> bool:
    return any(f.name == name and f.start <= position < f.end for f in fields)


def _inside_other_label(quantity: _Quantity, fields: list[_Field], name: str) -> bool:
    return any(
        f.name != name and f.name in _QUANTITY_FIELDS and f.start <= quantity.start < f.end
        for f in fields
    )


_QUANTITY_FIELDS = {"weight_g", "package_weight_g", "volume_ml", "storage_gb", "power_w",
                    "voltage_v", "dimensions_mm", "package_dimensions"}  # fmt: skip
# Only read inside their own labelled field: an unlabelled weight is the item's.
_LABELLED_ONLY = {"package_weight_g"}


# A number whose unit is borrowed from its neighbour and comes out above 10 m is no size.
_MAX_INFERRED_MM = 10_000.0


def _lopsided_times(matched: str) -> bool:
    """True when an "x" is spaced on one side only ("4x 3.0", "3.0 x8"): two facts, not a size."""
    return any(bool(left) != bool(right) for left, right in re.findall(r"(\s*)[xX*](\s*)", matched))


def _extract_dimensions(text: str, fields: list[_Field], specs: Specs) -> None:
    for match in _DIM_RE.finditer(text):
        if _inside_label(match.start(), fields, "package_dimensions"):
            continue
        numbers = [match.group(k) for k in "abc" if match.group(k)]
        units = [match.group(f"u{k}") for k in "abc" if match.group(k)]
        label_unit = next(
            (f.unit for f in fields
             if f.name == "dimensions_mm" and f.unit and f.start <= match.start() < f.end),
            None,
        )  # fmt: skip
        if not any(units) and not label_unit:
            continue  # "2 x 500" without a length unit is a pack size, not a size
        if _lopsided_times(match.group()):
            continue  # "4x 3.0 inch" (a zoom, then a screen), "PCIe 3.0 x8": not one size
        resolved: list[str] = []
        for index, unit in enumerate(units):
            later = next((u for u in units[index:] if u), None)
            earlier = next((u for u in reversed(units[:index]) if u), None)
            resolved.append(unit or later or earlier or label_unit or "")
        try:
            values = [
                convert(parse_number(n), u, "mm") for n, u in zip(numbers, resolved, strict=True)
            ]
        except ValueError:
            continue
        if any(v > _MAX_INFERRED_MM for v, u in zip(values, units, strict=True) if not u):
            continue  # "640X480"": a resolution before a closing quote, not 16 m of inches
        specs.dimensions_mm = [_round(v) for v in values]
        specs.note("dimensions_mm", match.group())
        return
    axis_values: list[float] = []
    seen_axes: set[str] = set()
    for match in _AXIS_DIM_RE.finditer(text):
        if _inside_label(match.start(), fields, "package_dimensions"):
            continue
        axis = (match.group("word") or match.group("letter")).lower()[0]
        letter = match.group("letter")
        if letter and letter not in "HWDLØ":  # single letters must be capitals
            continue
        if letter and not match.group("gap") and match.group("u").lower() not in ("mm", "cm"):
            continue
        if axis in seen_axes:
            continue
        try:
            value = convert(parse_number(match.group("n")), match.group("u"), "mm")
        except ValueError:
            continue
        seen_axes.add(axis)
        axis_values.append(_round(value))
        specs.note("dimensions_mm", match.group())
    if axis_values:
        specs.dimensions_mm = axis_values


def _extract_quantity(
    text: str, fields: list[_Field], specs: Specs, name: str, pattern: re.Pattern, target: str
) -> None:
    quantities = [
        q for q in _quantities(text, pattern, target)
        if not _inside_other_label(q, fields, name)
    ]  # fmt: skip
    if name in _LABELLED_ONLY:
        quantities = [q for q in quantities if _inside_label(q.start, fields, name)]
    if name == "storage_gb":
        quantities = _storage_candidates(text, quantities, fields)
    if name == "weight_g":
        quantities = [q for q in quantities if _is_product_weight(text, q, fields)]
    if not quantities and name in _OCR_UNIT_FIXES:
        pattern, unit = _OCR_UNIT_FIXES[name]
        for f in fields:
            match = pattern.fullmatch(f.value.strip()) if f.name == name else None
            if match:
                numbers = [parse_number(n) for n in re.findall(_NUM, match.group("n"))]
                value = convert(max(numbers), unit, target)
                quantities.append(_Quantity(value, unit, f.start, f.end, f.value))
    chosen = _pick(quantities, fields, name)
    if chosen is not None:
        setattr(
            specs, name, _round_gb(chosen.value) if name == "storage_gb" else _round(chosen.value)
        )
        specs.note(name, chosen.snippet)


_LOAD_CONTEXT = re.compile(
    r"(?:load|holds?|up\s+to|max(?:imum)?\.?|capacity|supports?|bearing|accuracy|"
    r"resolution)\W{0,3}(?:\w+\W{1,3}){0,2}$",
    re.IGNORECASE,
)


# Washing machines and dryers print their drum load ("Waschmaschine / 8 kg"), not their weight.
_LOAD_APPLIANCE = re.compile(
    r"\b(?:washing\s+machine|washer|dryer|waschmaschine|waschtrockner|trockner|wäschetrockner"
    r"|lave-linge|sèche-linge|lavatrice|lavadora)\b",
    re.IGNORECASE,
)


# "Shipping weight 2 kg" / "Versandgewicht 2 kg" without a colon: the parcel, not the item.
_PACKAGE_CONTEXT = re.compile(
    r"(?:shipping|package|packaging|parcel|gross|versand|verpackung|paket|brutto|expédition"
    r"|colis|emballage)\w*\W{0,3}(?:\w+\W{1,3}){0,2}$",
    re.IGNORECASE,
)


def _is_product_weight(text: str, quantity: _Quantity, fields: list[_Field]) -> bool:
    """A weight is the product's own unless the text calls it a load, limit or dose."""
    if any(f.name == "weight_g" and f.start <= quantity.start < f.end for f in fields):
        return True
    if quantity.unit == "G":  # a capital G alone is 5G/4G, not grams, outside a weight field
        return False
    if _LOAD_APPLIANCE.search(text):
        return False
    if _PACKAGE_CONTEXT.search(text[max(0, quantity.start - 32) : quantity.start]):
        return False
    return not _LOAD_CONTEXT.search(text[max(0, quantity.start - 24) : quantity.start])


def _storage_candidates(
    text: str, quantities: list[_Quantity], fields: list[_Field]
) -> list[_Quantity]:
    """Drop RAM sizes: '8 GB RAM, 256 GB SSD' has 256 GB of storage, not 8."""
    labelled = [
        q for q in quantities
        if any(f.name == "storage_gb" and f.start <= q.start < f.end for f in fields)
    ]  # fmt: skip
    if labelled:
        return labelled
    unlabelled = [
        q for q in quantities
        if not _RAM_AFTER.match(text, q.end) and not _RAM_BEFORE.search(text[: q.start])
    ]  # fmt: skip
    # A size followed by a drive word is the storage ("i7 8GB 256GB SSD" has 256 GB).
    drives = [q for q in unlabelled if _DRIVE_AFTER.match(text, q.end)]
    if drives:
        return drives
    if _MEMORY_MODULE.search(text) and not _DRIVE_ANYWHERE.search(text):
        return []
    return unlabelled


def _round_gb(value: float) -> float:
    """GB with four significant digits below 1 GB: 15 MB is 0.015 GB, never 0."""
    return float(f"{value:.4g}") if 0 < abs(value) < 1 else _round(value)


def _round(value: float) -> float:
    # 0.1 mm / g / ml is finer than any shop prints, and keeps unit conversions readable.
    rounded = round(value, 1)
    return float(int(rounded)) if rounded.is_integer() else rounded


# ---------------------------------------------------------------------------------------
# Words: brand, model, sku, gtin, colours, materials

_BY_BRAND_RE = re.compile(
    r"(?<![\w])(?P<verb>\w+\s+)?(?:by|from)[ \t]+"
    r"(?P<brand>[A-Z][\w&'.\-]*[A-Za-z0-9](?:[ \t]+(?:&[ \t]+)?[A-Z][\w&'\-]*[A-Za-z0-9]){0,2})"
)
# "Sold by Amazon" names a seller, "shipped from Berlin" a place: not brands.
_NOT_BRAND_VERBS = frozenset(
    {"sold", "shipped", "fulfilled", "dispatched", "delivered", "ships", "offered",
     "distributed", "imported", "discontinued", "made", "designed", "powered", "inspired"}
)  # fmt: skip
_NOT_BRANDS = frozenset(
    {"the", "a", "an", "our", "your", "this", "hand", "mail", "post", "email", "phone", "us",
     "manufacturer", "manufacturers", "hersteller", "fabricant",
     "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january",
     "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"}
)  # fmt: skip
_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_./]*[A-Za-z0-9]|[A-Za-z0-9]")
_GTIN_LABELLED_RE = re.compile(r"\d[\d \-]{6,22}\d")
_GTIN_BARE_RE = re.compile(r"(?<![\w\-])(\d{12,14}|\d \d{6} \d{6}|\d{4} \d{4} \d{5})(?![\w\-])")


def _extract_identity(text: str, fields: list[_Field], specs: Specs, brands: BrandIndex) -> None:
    for f in fields:
        if f.name == "brand" and specs.brand is None:
            brand = _brand_value(f.value)
            if brand:
                specs.brand = brand
                specs.note("brand", f.snippet)
        elif f.name == "model" and specs.model is None:
            model = _model_value(f.value)
            if model:
                specs.model = model
                specs.note("model", f.snippet)
        elif f.name == "sku" and specs.sku is None:
            code = _CODE_RE.match(f.value)
            if (code and any(ch.isdigit() for ch in code.group())) or (
                code and len(code.group()) >= 4
            ):
                specs.sku = code.group()
                specs.note("sku", f.snippet)
        elif f.name == "gtin" and specs.gtin is None:
            match = _GTIN_LABELLED_RE.match(f.value)
            gtin = normalize_gtin(match.group()) if match else None
            if gtin:
                specs.gtin = gtin
                specs.note("gtin", f.snippet)
    name_brand(specs, text, brands)
    if specs.brand is None:
        for match in _BY_BRAND_RE.finditer(text):
            brand = match.group("brand").strip(".")
            verb = (match.group("verb") or "").strip().lower()
            if verb not in _NOT_BRAND_VERBS and brand.split()[0].lower() not in _NOT_BRANDS:
                specs.brand = brand
                specs.note("brand", match.group())
                break
    if specs.gtin is None:
        for match in _GTIN_BARE_RE.finditer(text):
            gtin = normalize_gtin(match.group(1).replace(" ", ""))
            if gtin:
                specs.gtin = gtin
                specs.note("gtin", match.group())
                break


def name_brand(specs: Specs, text: str, brands: BrandIndex) -> None:
    """Fill `specs.brand` from a known brand the text names, and `specs.model` from the code
    printed right before (opening the line) or after that brand; facts already set are kept.

    `extract_specs` does this itself; a caller that learns brands after extracting (a crawl
    that has since seen the brand in another item's structured data) calls it again.
    """
    named = _named_brand(text, brands)
    if named is None:
        return
    if specs.brand is None:
        specs.brand = named.name
        specs.note("brand", text[named.start : named.end])
    if specs.model is None and named.name.casefold() == specs.brand.casefold():
        leading = _model_before(text, named.start)
        model = leading or _model_after(text, named.end)
        if leading:
            specs.model = leading
            specs.note("model", text[text.rindex(leading, 0, named.start) : named.end])
        elif model:
            specs.model = model
            specs.note("model", text[named.start : text.index(model, named.end) + len(model)])


def _model_before(text: str, brand_start: int) -> str | None:
    """A part number that opens the line right before the brand: "341-1237 Dell 36-GB ..."."""
    line_start = text.rfind("\n", 0, brand_start) + 1
    match = re.fullmatch(r"\W*(\S+)\s+", text[line_start:brand_start])
    token = match.group(1) if match else None
    if not token or not _MODEL_TOKEN_RE.fullmatch(token):
        return None
    # Digits-only part numbers ("341-1237") count here, where no range can stand.
    return token if _is_model_code(token) or re.fullmatch(r"\d{3,}-\d{3,}", token) else None


def _named_brand(text: str, brands: BrandIndex) -> BrandMatch | None:
    """A known brand in the title (the first line), else anywhere in the rest."""
    title, _, rest = text.partition("\n")
    found = brands.find(title)
    if found is None and rest:
        found = brands.find(rest)
        if found is not None:
            offset = len(title) + 1
            found = BrandMatch(found.name, found.start + offset, found.end + offset)
    return found


# A model code: letters and digits mixed ("C920", "RS6GA884CSL", "B250M-A", "2740-ST-20021"),
# or digits joined by hyphens ("749361-066").
_MODEL_TOKEN_RE = re.compile(r"[^\W_](?:[\w.\-/]*[^\W_])?")
_MODEL_WORDS_AHEAD = 4  # "Raymond Weil Freelancer Watch 2740-ST-20021": third word after
_FITS_WORDS = frozenset({"for", "f", "fits", "für", "pour", "per", "para", "compatible", "w"})
# Spec and standard tokens that mix letters and digits without naming a model.
_NOT_MODEL_RE = re.compile(
    # quantities, counts and ordinals: 8GB, 8Go, 36-GB, 2.4GHz, 65x, 1080p, 3-tlg, 2nd
    r"\d+(?:[.,]\d+)?-?(?:[a-z]{0,3}b|[gtm]o|[kmgt]?hz|mm|cm|m|kg|g|l|ml|w|v|va|mp|mah|p|i|k"
    r"|fps|rpm|gbps|mbps|in|inch|zoll|th|st|nd|rd|er|pcs|pk|tlg|teilig|pack|er-pack|pin|c"
    r"|cores?|ports?)|\d{1,3}x|\d+(?:/\d+)+\w*|\d+r/\d+w"
    # interfaces, sockets, memory and network standards: DDR4, USB3.0, LGA1151, PC3-12800
    r"|(?:g?ddr|lpddr|usb|pcie|cat|lga|am|fm|wi-?fi|win|sata|hdmi|dp|pc|ip|ipx|mp|gen|lte"
    r"|dvb-?t|bt)\d[\w.\-]*|[2-6]g|x\d{1,2}|w1[01]\w*|h\.?26[45]|m\.2|u\d{2,3}|v\d{2}"
    # dimensions and pixel counts, CPU families, apertures, card speed classes
    r"|[\d.]+[xX]\d+(?:[a-zA-Z]+)?|\d+[gGkK]|i[3579]|\d+-\d+(?:mm)?|f/[\d.,\-]+\w*"
    r"|uhs-?\w+|class\d+|u[1-3]",
    re.IGNORECASE,
)


def _model_after(text: str, start: int) -> str | None:
    """The model code printed right after a brand: within the next few words of the line."""
    line = text[start:].split("\n", 1)[0]
    previous: str | None = None
    for count, match in enumerate(_MODEL_TOKEN_RE.finditer(line)):
        token = match.group()
        if count >= _MODEL_WORDS_AHEAD or token.lower() in _FITS_WORDS:
            break  # "GoPro Battery f/ HERO4": the code after "for" is what it fits
        if _is_model_code(token):
            # "HP 250 G5": a plain series number right before the code belongs to it.
            if previous and re.fullmatch(r"\d{2,4}", previous):
                gap = line[match.start() - len(previous) - 1 : match.start()]
                if gap == previous + " ":
                    return f"{previous} {token}"
            return token
        previous = token
    return None


def _is_model_code(token: str) -> bool:
    if len(token) < 2 or _NOT_MODEL_RE.fullmatch(token):
        return False
    digits = sum(ch.isdigit() for ch in token)
    letters = sum(ch.isalpha() for ch in token)
    if letters and digits:
        return True
    return digits >= 3 and "-" in token  # "749361-066"


def _brand_value(value: str) -> str | None:
    brand = re.split(r"\s*[,;(|]\s*|\s+-\s+", value)[0].strip(" .")
    words = brand.split()
    if not words or len(words) > 4 or not re.search(r"[A-Za-z]", brand):
        return None
    return brand


def _model_value(value: str) -> str | None:
    model = re.split(r"\s*[,;(|]\s*|\s+-\s+", value)[0].strip(" .")
    words = model.split()
    if not words or len(words) > 4:
        return None
    # A model names a product line or code: "ABC-123", "Galaxy S21", never plain prose.
    if not any(ch.isdigit() for ch in model) and not re.fullmatch(r"[A-Z0-9\-]{2,}", words[0]):
        return None
    return model


_SPLIT_LIST_RE = re.compile(r"\s*(?:,|/|&|\+|;|\band\b|\bor\b|\bwith\b)\s*", re.IGNORECASE)
_IN_COLOR_RE = re.compile(r"(?<![\w])in\s+(?P<words>[A-Za-z]+(?:[\s\-][A-Za-z]+)?)")


def _colors_in(value: str) -> list[str]:
    colors = []
    for part in _SPLIT_LIST_RE.split(value):
        words = part.strip(" .()").split()[:4]
        # The longest phrase that is a colour wins: "Navy Blue" over "Blue"; a shop's fancy
        # name keeps its colour word ("Phantom Black" -> "black").
        phrases = [
            " ".join(words[i : i + size])
            for size in range(min(3, len(words)), 0, -1)
            for i in range(len(words) - size + 1)
        ]
        color = next((c for c in map(canonical_color, phrases) if c), None)
        if color:
            colors.append(color)
    return colors


def _extract_colors(text: str, fields: list[_Field], specs: Specs) -> None:
    found: list[str] = []
    for f in fields:
        if f.name == "colors":
            colors = _colors_in(f.value)
            if colors:
                specs.note("colors", f.snippet)
            found.extend(colors)
    if not found:
        # "in black / yellow": a list of colour words right after "in", ending at the first
        # part that is not a colour ("in black, made of oak" keeps only black).
        for match in _IN_COLOR_RE.finditer(text):
            tail = re.split(r"[.;:\n()]", text[match.start() + 2 :], maxsplit=1)[0]
            colors = []
            for part in _SPLIT_LIST_RE.split(tail.strip()):
                color = canonical_color(part.strip())
                if color is None:
                    break
                colors.append(color)
            if colors:
                found.extend(colors)
                specs.note("colors", "in " + tail.strip())
    if not found:
        found = _title_colors(text, specs)
    specs.colors = list(dict.fromkeys(found))


# Titles print the colourway as a slash list ("- White/Anthracite/Black"), after a closing
# dash ("Compact Camera - Black") or in brackets ("(Silver)").
_COLOR_WORD = r"[^\W\d_]{2,}"  # two letters at least: "w/" means "with"
_SLASH_LIST_RE = re.compile(
    rf"(?<![\w/]){_COLOR_WORD}(?: {_COLOR_WORD}){{0,2}}"
    rf"(?:\s*/\s*{_COLOR_WORD}(?: {_COLOR_WORD}){{0,2}})+(?![\w/])"
)
_TRAILING_COLOR_RE = re.compile(
    r"(?:\s-\s+|\()(?P<words>[A-Za-z]+(?: [A-Za-z]+)?)\s*(?=$|[\n\")|,])"
)


def _title_colors(text: str, specs: Specs) -> list[str]:
    """Colour words a title prints without a label; a slash list anywhere names them all."""
    title = text.split("\n", 1)[0]
    for match in _SLASH_LIST_RE.finditer(text):
        colors = [c for part in match.group().split("/") for c in _colors_in(part.strip())[:1]]
        if colors:
            specs.note("colors", match.group())
            return colors
    for match in _TRAILING_COLOR_RE.finditer(title):
        color = canonical_color(match.group("words"))
        if color:
            specs.note("colors", match.group().strip(" -("))
            return [color]
    return []


_MATERIAL_NAMES = sorted(MATERIALS, key=len, reverse=True)
_MATERIAL_ALTERNATION = "|".join(re.escape(m) for m in _MATERIAL_NAMES)
_PERCENT_MATERIAL_RE = re.compile(
    rf"(?<![\w.])(?P<p>\d{{1,3}}(?:[.,]\d+)?)\s*%\s*(?P<m>{_MATERIAL_ALTERNATION})(?![\w])"
    rf"|(?<![\w])(?P<m2>{_MATERIAL_ALTERNATION})\s*(?P<p2>\d{{1,3}}(?:[.,]\d+)?)\s*%",
    re.IGNORECASE,
)


def _material_in(part: str, *, labelled: bool) -> Material | None:
    percent_match = re.search(r"(\d{1,3}(?:[.,]\d+)?)\s*%", part)
    percent = parse_number(percent_match.group(1)) if percent_match else None
    if percent is not None and not 0 < percent <= 100:
        return None
    name_text = re.sub(r"\d{1,3}(?:[.,]\d+)?\s*%", " ", part).strip(" .()-:").lower()
    name_text = " ".join(name_text.split())
    percent = _round(percent) if percent else None
    if (
        labelled
        and name_text
        and len(name_text.split()) <= 3
        and name_text.replace(" ", "").isalpha()
    ):
        # A labelled value is the shop's own wording ("recycled paper"): keep all of it.
        return Material(MATERIALS.get(name_text, name_text), percent)
    match = re.search(rf"(?<![\w])(?:{_MATERIAL_ALTERNATION})(?![\w])", name_text)
    if match:
        return Material(MATERIALS[match.group()], percent)
    return None


_PROSE_ALTERNATION = "|".join(re.escape(m) for m in sorted(PROSE_MATERIALS, key=len, reverse=True))
_PROSE_MATERIAL_RE = re.compile(
    rf"(?<![\w\-])(?P<m>{_PROSE_ALTERNATION})(?![\w\-])"
    # German glues the material to the thing: Lederjacke, Baumwollhemd, Edelstahlgehäuse.
    r"|(?<![\w\-])(?P<stem>echtleder|wildleder|kunstleder|leder|baumwoll|edelstahl|merinowoll"
    r"|woll|seiden|leinen|kaschmir)(?=[a-zäöüß]{3,})",
    re.IGNORECASE,
)
_STEMS = {"baumwoll": "baumwolle", "woll": "wolle", "merinowoll": "merinowolle",
          "seiden": "seide"}  # fmt: skip
# "leather look", "Lederoptik", "leather care": the look of a material, or what it is for.
_NOT_MATERIAL_AFTER = re.compile(
    r"[\s\-]*(?:look|optik|imitat\w*|effect|effet|style|pflege\w*|fett|care|cleaner"
    r"|conditioner|polish|spray)\b",
    re.IGNORECASE,
)
_NOT_MATERIAL_BEFORE = re.compile(r"\b(?:for|für|pour|imitation|fake|style|like)\s+$", re.I)


# "glass and stainless steel", "Leder/Textil": a list that names one prose material vouches
# for the other materials it names.
_MATERIAL_LIST_RE = re.compile(
    rf"(?<![\w\-])(?:{_MATERIAL_ALTERNATION})(?:\s*(?:,|/|&|\+|\band\b|\bund\b|\bet\b)\s*"
    rf"(?:{_MATERIAL_ALTERNATION}))+(?![\w\-])",
    re.IGNORECASE,
)
_MATERIAL_WORD_RE = re.compile(rf"(?<![\w\-])(?:{_MATERIAL_ALTERNATION})(?![\w\-])", re.I)


def _prose_materials(text: str) -> list[tuple[str, str]]:
    """(canonical name, snippet) of each material the text names without a label."""
    found = []
    for run in _MATERIAL_LIST_RE.finditer(text):
        words = [m.group().lower() for m in _MATERIAL_WORD_RE.finditer(run.group())]
        if any(word in PROSE_MATERIALS for word in words):
            found.extend((MATERIALS[word], run.group()) for word in words)
    for match in _PROSE_MATERIAL_RE.finditer(text):
        if _NOT_MATERIAL_AFTER.match(text, match.end()) or _NOT_MATERIAL_BEFORE.search(
            text[max(0, match.start() - 16) : match.start()]
        ):
            continue
        word = (match.group("m") or match.group("stem")).lower()
        found.append((MATERIALS[_STEMS.get(word, word)], match.group()))
    return found


def _extract_materials(text: str, fields: list[_Field], specs: Specs) -> None:
    found: dict[str, Material] = {}
    for f in fields:
        if f.name != "materials":
            continue
        for part in re.split(r"\s*(?:,|/|&|\+|;|\band\b)\s*", f.value, flags=re.IGNORECASE):
            material = _material_in(part, labelled=True)
            if material and material.name not in found:
                found[material.name] = material
                specs.note("materials", f.snippet)
    for match in _PERCENT_MATERIAL_RE.finditer(text):
        if any(f.name == "materials" and f.start <= match.start() < f.end for f in fields):
            continue  # already read, with the shop's own wording, from the labelled field
        name = MATERIALS[(match.group("m") or match.group("m2")).lower()]
        percent = parse_number(match.group("p") or match.group("p2"))
        if 0 < percent <= 100 and (name not in found or found[name].percent is None):
            found[name] = Material(name, _round(percent))
            specs.note("materials", match.group())
    if not found:  # a labelled or percentage list is the whole story; prose only fills a gap
        for name, snippet in _prose_materials(text):
            if name not in found:
                found[name] = Material(name)
                specs.note("materials", snippet)
    specs.materials = list(found.values())


# ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _default_brands() -> BrandIndex:
    return shipped_brands()


_NORMALISE = str.maketrans(
    {
        "\u00d7": "x",  # multiplication sign
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2033": '"',  # double prime (inches)
        "\u201c": '"',
        "\u201d": '"',
        "\u2019": "'",
        "\t": " ",
    }
)


def extract_specs(text: str, *, brands: BrandIndex | None = None) -> Specs:
    """Extract every specification `text` states; see the module docstring.

    `text` may be a page's title and description joined with newlines, or OCR output.
    `brands` are the brand names to recognise in the text when no "Brand:" field names one:
    the shipped list by default; pass `shipped_brands(seen)` to add the brands a store has
    seen in structured data. Raises TypeError for non-string input.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_specs expects str, got {type(text).__name__}")
    # Specification tables copied from HTML arrive as "Key<TAB>Value".
    text = re.sub(r"(?m)^([A-Za-z][\w .\-]{0,30}?)\t+", r"\1: ", text)
    text = text.translate(_NORMALISE)
    specs = Specs()
    if not text.strip():
        return specs
    fields = _labelled_fields(text)
    _extract_dimensions(text, fields, specs)
    _extract_quantity(text, fields, specs, "weight_g", _WEIGHT_RE, "g")
    _extract_quantity(text, fields, specs, "package_weight_g", _WEIGHT_RE, "g")
    _extract_quantity(text, fields, specs, "volume_ml", _VOLUME_RE, "ml")
    _extract_quantity(text, fields, specs, "storage_gb", _STORAGE_RE, "GB")
    _extract_quantity(text, fields, specs, "power_w", _POWER_RE, "W")
    _extract_quantity(text, fields, specs, "voltage_v", _VOLTAGE_RE, "V")
    _extract_identity(text, fields, specs, brands if brands is not None else _default_brands())
    _extract_colors(text, fields, specs)
    _extract_materials(text, fields, specs)
    return specs
