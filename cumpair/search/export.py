"""Every product of a store with its offers, as plain dicts: the export behind `cumpair products`.

A product comes out as `SearchService.product` shows it (the same title, identity, key specs and
offers cheapest first, priced offers before those with an unknown price), without the query-only
fields (score, reasons). An offer the grouping has not placed yet comes out alone, with
``product_id`` null, so the export holds every offer of the store. Read-only: it runs beside a
crawl or an ingest writing the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cumpair.search.products import ProductGroups
from cumpair.search.ranking import price_flags
from cumpair.search.ranking_options import RankingOptions
from cumpair.search.service import QueryError, SearchService
from cumpair.search.store_scan import scan_offers
from cumpair.search.views import ProductView, cheapest_first, key_specs, offer_view, ranked_by

_QUERY_ONLY = ("score", "reasons")


def product_dicts(
    store: Any, groups: ProductGroups, ranking: RankingOptions | None = None
) -> Iterator[dict[str, Any]]:
    """Products by id, then ungrouped offers by id, offers ranked under `ranking` (default: by
    item price); each ``{"product_id", "title", "brand", "model", "gtin", "specs",
    "lowest_price" (and its currency, basis, condition and offer id), "lowest_price_seen",
    "ranking", "offers": [...]}`` with JSON-ready values."""
    ranking = ranking or RankingOptions()
    service = SearchService(store, groups, encoder_loader=_no_encoders)
    offer_ids = [record.id for record in scan_offers(store)]
    product_of = groups.product_of(offer_ids)
    for product_id in sorted(set(product_of.values())):
        try:
            view = service.product(product_id)
        except QueryError:  # its offers left the store since the scan
            continue
        yield _exported(ranked_by([view], ranking)[0])
    for offer_id in offer_ids:
        record = None if offer_id in product_of else store.get_offers([offer_id]).get(offer_id)
        if record is not None:
            yield _ungrouped(store, record, ranking)


def _ungrouped(store: Any, record: Any, ranking: RankingOptions) -> dict[str, Any]:
    """An offer not grouped yet as a product of its own (ranked and priced the same way)."""
    history = store.price_history(record.id)
    flags = price_flags([record], [history])  # alone: its own history is the only reference
    offers = cheapest_first([offer_view(record, history)], flags, ranking)
    specs = key_specs([record])
    view = ProductView(
        0, record.title, record.brand, record.model, record.gtin, specs, offers, ranking=ranking
    )
    return {**_exported(view), "product_id": None}


def _exported(view: ProductView) -> dict[str, Any]:
    """The view's JSON without what only a query gives (match score and reasons)."""
    data = view.to_dict()
    for name in _QUERY_ONLY:
        data.pop(name)
    return data


def _no_encoders() -> Any:
    raise AssertionError("exporting products needs no encoder")


__all__ = ["product_dicts"]
