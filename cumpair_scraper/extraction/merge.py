"""One item from several sources: each field from the first source that gives it.

Sources come best first (JSON-LD, microdata, RDFa, OpenGraph, the shop's selectors, the visible
page). `field_sources` records where each field came from. Where structured sources disagree on
a price, currency, availability or identifier, the disagreement is recorded in `conflicts`
instead of being settled silently (a price that is one of the first source's variant prices is
no disagreement); a price disagreement is settled only when all but one of the
prices are the page's strikethrough/list price, and otherwise leaves the price empty (a wrong
price is worse than none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cumpair_scraper.extraction.structured import Candidate

COMPARED_FIELDS = ("price", "currency", "availability", "sku", "gtin", "model")
# Fields that describe one offer: they come together with the price they belong to.
_PRICE_FIELDS = (
    "currency",
    "list_price",
    "vat_included",
    "price_low",
    "price_high",
    "condition",
    "shipping",
)


@dataclass
class Merged:
    fields: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def missing(self, names: tuple[str, ...] | list[str]) -> list[str]:
        return [n for n in names if self.fields.get(n) in (None, [], "")]

    def fill(self, candidate: Candidate) -> None:
        """Take the candidate's values for the fields still empty."""
        for name, value in candidate.fields.items():
            if value in (None, [], "") or self.fields.get(name) not in (None, [], ""):
                continue
            if name == "price" and self.sources.get("price") == "conflict":
                continue  # a disputed price is not filled in by a weaker source
            self.fields[name] = value
            self.sources[name] = candidate.source


def merge_structured(
    candidates: list[Candidate], struck: set[Decimal], problems: list[str]
) -> Merged:
    """Merge the structured candidates, flagging and (where safe) settling disagreements."""
    merged = Merged()
    for name in COMPARED_FIELDS:
        given = [c for c in candidates if c.fields.get(name) is not None]
        if name == "price":  # one variant's price next to the from-price is no disagreement
            given = given[:1] + [c for c in given[1:] if not _explained(given[0], c)]
        values = {c.source: c.fields[name] for c in given}
        if len(set(values.values())) > 1:
            merged.conflicts.append(
                {"field": name, "values": {k: str(v) for k, v in values.items()}}
            )
            problems.append(f"conflict: {name} " + ", ".join(f"{k}={v}" for k, v in values.items()))
    price_source = _price_source(candidates, merged, struck)
    if price_source is not None:
        merged.fill(price_source)  # the price and the offer fields that go with it
    elif any(c["field"] == "price" for c in merged.conflicts):
        merged.sources["price"] = "conflict"
    for candidate in candidates:
        merged.fill(candidate)
    return merged


def _price_source(
    candidates: list[Candidate], merged: Merged, struck: set[Decimal]
) -> Candidate | None:
    priced = [c for c in candidates if c.fields.get("price") is not None]
    if not priced:
        return None
    if all(_explained(priced[0], c) for c in priced[1:]):
        return _offer_part(priced[0])
    listed = struck | {c.fields["list_price"] for c in priced if c.fields.get("list_price")}
    sale = [c for c in priced if c.fields["price"] not in listed]
    if len({c.fields["price"] for c in sale}) != 1:
        return None
    chosen = sale[0]
    others = [c.fields["price"] for c in priced if c.fields["price"] in listed]
    if chosen.fields.get("list_price") is None and others:
        chosen = Candidate(chosen.source, dict(chosen.fields, list_price=max(others)))
    for conflict in merged.conflicts:
        if conflict["field"] == "price":
            conflict["settled"] = f"{chosen.source}: the others are the list price"
    return _offer_part(chosen)


def _explained(first: Candidate, other: Candidate) -> bool:
    """Whether `other`'s price is one of the prices `first` offers (its price, a variant's,
    either end of its range): a page's OpenGraph price is often the selected size's."""
    offered = {first.fields.get("price"), first.fields.get("price_low")}
    offered |= {first.fields.get("price_high")}
    offered |= {v.get("price") for v in first.fields.get("variants") or []}
    return other.fields["price"] in offered - {None}


def _offer_part(candidate: Candidate) -> Candidate:
    """The price and the fields that belong to it, without the rest of the candidate."""
    fields = candidate.fields.items()
    return Candidate(
        candidate.source, {k: v for k, v in fields if k == "price" or k in _PRICE_FIELDS}
    )


def settle_struck_price(
    merged: Merged, struck: set[Decimal], shown: Decimal | None, problems: list[str]
) -> None:
    """A structured price that the page itself strikes through is the list price: the price
    the page shows beside it (`shown`, from the visible page) is taken when it is lower, and
    otherwise the price is left empty rather than wrong."""
    price, source = merged.fields.get("price"), merged.sources.get("price")
    if price is None or price not in struck:
        return
    values = {source: str(price), "visible": str(shown) if shown is not None else "none"}
    conflict: dict[str, Any] = {"field": "price", "values": values}
    if merged.fields.get("list_price") is None:
        merged.fields["list_price"] = price
    if shown is not None and shown < price and shown not in struck:
        merged.fields["price"], merged.sources["price"] = shown, "visible"
        conflict["settled"] = f"visible: the {source} price is struck through on the page"
    else:
        merged.fields["price"], merged.sources["price"] = None, "conflict"
    merged.conflicts.append(conflict)
    problems.append(f"conflict: price {source}={price} is struck through on the page")
