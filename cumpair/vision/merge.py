"""Merge what a product page states with what its images show.

The page is the shop's own statement, so it wins; an image fact that disagrees with it is
kept out of the result and reported as a conflict (a typo on the page, or the wrong label
photographed) for a human or a later stage to look at. An image fact that only refines the
page's (`cumpair.vision.refine`: "100% cotton" for "cotton", "1520 g" for "1.5 kg") is no
conflict: the finer value is kept. Facts only one side states are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cumpair.identifiers import normalize_gtin
from cumpair.vision.evaluation import FIELDS, values_match
from cumpair.vision.refine import refinement
from cumpair.vision.specs import Specs


@dataclass(frozen=True, slots=True)
class SpecConflict:
    field: str
    page: Any
    image: Any
    image_url: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "page": self.page, "image": self.image,
                "image_url": self.image_url}  # fmt: skip


def page_specs(
    specs: Specs, *, brand: str | None = None, model: str | None = None, gtin: str | None = None
) -> Specs:
    """Overlay the page's structured identity fields (schema.org data) on its text facts."""
    if brand:
        specs.brand = brand
    if model:
        specs.model = model
    canonical = normalize_gtin(gtin) if gtin else None
    if canonical:
        specs.gtin = canonical
    return specs


def merge_specs(
    page: Specs, images: list[tuple[str | None, Specs]]
) -> tuple[dict[str, Any], list[SpecConflict]]:
    """Return the merged spec dict (output contract) and the page-vs-image conflicts.

    `images` is (image URL, specs) in the shop's order; the first image that states a fact
    supplies it, and dominant colours come from the first image that has any (the main photo).
    """
    merged = page.to_dict()
    conflicts: list[SpecConflict] = []
    raw: dict[str, list[str]] = {k: list(v) for k, v in merged.pop("raw", {}).items()}
    for url, specs in images:
        found = specs.to_dict()
        for name in FIELDS:
            if name not in found:
                continue
            if name not in merged:
                merged[name] = found[name]
                raw.setdefault(name, []).extend(specs.raw.get(name, []))
            elif values_match(name, found[name], merged[name]):
                continue
            elif (
                finer := refinement(
                    name, merged[name], raw.get(name, []), found[name], specs.raw.get(name, [])
                )
            ) is not None:
                if finer is not merged[name]:
                    merged[name] = finer
                    raw.setdefault(name, []).extend(specs.raw.get(name, []))
            elif not any(c.field == name and c.image_url == url for c in conflicts):
                conflicts.append(SpecConflict(name, merged[name], found[name], url))
        if "dominant_colors" not in merged and found.get("dominant_colors"):
            merged["dominant_colors"] = found["dominant_colors"]
    if raw:
        merged["raw"] = raw
    return merged, conflicts
