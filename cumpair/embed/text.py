"""Compose the one string per product that the text encoder embeds.

Title first (it carries most meaning), then brand and model when the title does not already say
them, then a few key specs in words a shopper types ("128 GB", "1200 W"). Stable wording matters:
the same product crawled twice must give the same string, hence the same vector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# spec key -> unit written after the number (the spec output contract of cumpair.vision.specs)
_UNIT_SPECS: tuple[tuple[str, str], ...] = (
    ("storage_gb", "GB"),
    ("power_w", "W"),
    ("voltage_v", "V"),
    ("volume_ml", "ml"),
    ("weight_g", "g"),
)
MAX_CHARS = 1000  # MiniLM reads 256 tokens; more text only costs tokenizer time


def _clean(value: Any) -> str:
    return " ".join(str(value).split()) if value not in (None, "") else ""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _clean(value)


def _spec_phrases(specs: Mapping[str, Any]) -> Iterable[str]:
    for key, unit in _UNIT_SPECS:
        if specs.get(key) not in (None, ""):
            yield f"{_number(specs[key])} {unit}"
    dims = specs.get("dimensions_mm")
    if isinstance(dims, list | tuple) and dims:
        yield " x ".join(_number(d) for d in dims) + " mm"
    colors = specs.get("colors")
    if isinstance(colors, list | tuple):
        yield from (_clean(color) for color in colors if _clean(color))
    materials = specs.get("materials")
    if isinstance(materials, list | tuple):
        for material in materials:
            name = material.get("name") if isinstance(material, Mapping) else material
            if _clean(name):
                yield _clean(name)


def product_text(item: Mapping[str, Any]) -> str:
    """The text to embed for a product record (a ProductItem through itemadapter, or a dict).

    Reads `title`, `brand`, `model`, `category` and `specs`; missing fields are skipped.
    Returns "" when there is nothing to say (the caller then stores no text vector).
    """
    title = _clean(item.get("title"))
    parts = [title] if title else []
    lowered = title.lower()
    for field in ("brand", "model"):
        value = _clean(item.get(field))
        if value and value.lower() not in lowered:
            parts.append(value)
            lowered += " " + value.lower()
    specs = item.get("specs") or {}
    if isinstance(specs, Mapping):
        for phrase in _spec_phrases(specs):
            if phrase.lower() not in lowered:
                parts.append(phrase)
                lowered += " " + phrase.lower()
    category = _clean(item.get("category"))
    if category and category.lower() not in lowered:
        parts.append(category)
    return ", ".join(parts)[:MAX_CHARS]
