"""When two statements of one fact differ only in precision, they are one fact.

A page that says "cotton" and a label that says "100% cotton" agree: the label refines the
page. So do "1.5 kg" and "1520 g" (1.5 kg is printed to 0.1 kg, and 1520 g is within that
rounding). `refinement` returns the finer value for such pairs and None for a real
disagreement, which `cumpair.vision.merge` then reports as a conflict.
"""

from __future__ import annotations

import re
from typing import Any

from cumpair.vision.evaluation import values_match

_SCALAR_QUANTITIES = frozenset(
    {"weight_g", "package_weight_g", "volume_ml", "storage_gb", "power_w", "voltage_v"}
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def refinement(
    name: str, page: Any, page_raw: list[str], image: Any, image_raw: list[str]
) -> Any | None:
    """The finer of two values of field `name` when one only refines the other, else None.

    Materials: the image's list names every material the page names (and maybe more) and
    agrees with every percentage the page gives. Quantities: the two values lie within the
    rounding of the coarser one as printed (`page_raw`/`image_raw`: the matched snippets);
    a number printed without decimals is taken as exact.
    """
    if name == "materials":
        return _finer_materials(page, image)
    numbers = isinstance(page, int | float) and isinstance(image, int | float)
    if name in _SCALAR_QUANTITIES and numbers:
        page_slack, image_slack = _relative_slack(page_raw), _relative_slack(image_raw)
        slack = max(page_slack, image_slack)
        if abs(page - image) <= slack * max(abs(page), abs(image)):
            return page if page_slack <= image_slack else image
    return None


def _finer_materials(page: list[dict], image: list[dict]) -> list[dict] | None:
    stated = {str(m["name"]).lower(): m.get("percent") for m in image}
    for material in page:
        name = str(material["name"]).lower()
        if name not in stated:
            return None
        percent = material.get("percent")
        if percent is not None and (
            stated[name] is None or not values_match("percent", stated[name], percent)
        ):
            return None
    if all(m.get("percent") is None for m in image) and len(image) == len(page):
        return None  # the same names without percentages are a match, not a refinement
    return image


def _relative_slack(snippets: list[str]) -> float:
    """Half the last printed digit's step relative to the number (0 for an integer)."""
    for snippet in snippets:
        match = _NUMBER.search(snippet)
        if match is None:
            continue
        text = match.group().replace(",", ".")
        value = float(text)
        decimals = len(text.partition(".")[2])
        if not decimals or not value:
            return 0.0
        return 0.5 * 10.0**-decimals / value
    return 0.0
