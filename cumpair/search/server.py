"""`cumpair serve`: the search service over HTTP, keeping models and the index warm.

JSON API: ``GET/POST /search`` (``text``, ``gtin`` or an uploaded ``image``; ``k``, ``shop``,
``max_price``, ``availability``, ``condition``, ``explain``; the ranking: ``rank_by`` =
price|total|unit, ``ship_to`` = a country code, ``currency``, over the server's
`RankingOptions`), ``GET /health``, ``POST /match`` (a JSON
``{"left": offer, "right": offer}``: are they one product, and each signal's contribution).
The pages people use (``/``, ``/p/{id}``), ``/products/{id}`` with its ``/history``, photos and
watches live in `pages`. Queries run in worker threads so one slow photo never stalls the
event loop; k-NN searches that overlap are joined into batched store searches (`batching`).
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from cumpair.search.batching import DEFAULT_MAX_BATCH, BatchedSearches
from cumpair.search.features import OfferError
from cumpair.search.matching import MatchConfig, explain_dict, match_offers
from cumpair.search.ranking import CONDITIONS
from cumpair.search.ranking_options import RankingOptions, RankingOptionsError
from cumpair.search.service import QueryError, SearchService
from cumpair.search.views import ProductView, ranked_by, with_availability, with_condition
from cumpair.vision.images import ImageError

logger = logging.getLogger(__name__)

SERVICE = web.AppKey("service", SearchService)
RANKING = web.AppKey("ranking", RankingOptions)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_K = 50


def search_options(params: Any) -> dict[str, Any]:
    """The search keywords (k, shops, max_price, explain) from query or form parameters."""
    try:
        k = int(params.get("k", 5))
    except ValueError as exc:
        raise QueryError("k must be an integer") from exc
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}")
    max_price = params.get("max_price") or None
    if max_price is not None:
        try:
            max_price = Decimal(max_price)
        except InvalidOperation as exc:
            raise QueryError(f"max_price {max_price!r} is not a number") from exc
        if not max_price.is_finite() or max_price < 0:
            raise QueryError("max_price must be a non-negative number")
    shops = tuple(s for value in params.getall("shop", []) for s in value.split(",") if s)
    return {
        "k": k,
        "shops": shops or None,
        "max_price": max_price,
        "explain": params.get("explain", "") in ("1", "true", "yes", "on"),
    }


def ranking_options(params: Any, base: RankingOptions) -> RankingOptions:
    """The query's ranking (``rank_by``, ``ship_to``, ``currency``) over the server's `base`."""
    try:
        return base.with_overrides(
            by=params.get("rank_by") or None,
            ship_to=params.get("ship_to") or None,
            currency=params.get("currency") or None,
        )
    except RankingOptionsError as exc:
        raise QueryError(str(exc)) from None


def shown_products(
    products: list[ProductView], params: Any, base: RankingOptions
) -> list[ProductView]:
    """Products as a query asks to see them: its availability and condition filters, ranked
    under its ranking options; QueryError for an unknown condition or ranking option."""
    condition = (params.get("condition") or "").strip()
    if condition and condition.capitalize() not in CONDITIONS:
        raise QueryError(f"condition must be one of {', '.join(CONDITIONS)}")
    products = with_availability(products, params.get("availability"))
    return ranked_by(with_condition(products, condition or None), ranking_options(params, base))


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def search(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    params = request.query
    image: bytes | None = None
    if request.method == "POST":
        form = await request.post()
        params = form.copy()
        params.extend(request.query)
        upload = form.get("image")
        if isinstance(upload, web.FileField):
            image = upload.file.read()
        elif upload is not None:
            return _bad_request("image must be an uploaded file")
    try:
        options = search_options(params)
        if image is not None:
            response = await asyncio.to_thread(service.search_image, image, **options)
        elif params.get("text"):
            response = await asyncio.to_thread(service.search_text, params["text"], **options)
        elif params.get("gtin"):
            response = await asyncio.to_thread(service.search_gtin, params["gtin"], **options)
        else:
            return _bad_request("give text, gtin or an uploaded image")
        response.products = shown_products(response.products, params, request.app[RANKING])
    except QueryError as exc:
        return _bad_request(str(exc))
    except ImageError as exc:  # not an image, truncated, too large...
        return _bad_request(f"unusable image: {exc}")
    # Anything else is a bug, not bad input: aiohttp logs it and answers 500.
    return web.json_response(response.to_dict())


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    products, offers = await asyncio.to_thread(service.groups.count)
    return web.json_response(
        {
            "status": "ok",
            "products": products,
            "grouped_offers": offers,
            "models_loaded": service.encoders_loaded,
            "store": await asyncio.to_thread(service.store.health),
        }
    )


async def match(request: web.Request) -> web.Response:
    """Two offers (the store's field names) -> the matcher's verdict, explained."""
    try:
        body = await request.json()
    except ValueError:
        return _bad_request('send JSON: {"left": offer, "right": offer}')
    if not isinstance(body, dict) or not {"left", "right"} <= body.keys():
        return _bad_request('send JSON: {"left": offer, "right": offer}')
    config = MatchConfig()
    try:
        evidence = await asyncio.to_thread(match_offers, body["left"], body["right"], config)
    except OfferError as exc:
        return _bad_request(str(exc))
    return web.json_response(explain_dict(evidence, config))


async def _warm(app: web.Application) -> None:
    """Load the encoders before the first query so it is as fast as the next ones."""
    service = app[SERVICE]
    try:
        await asyncio.to_thread(lambda: service.encoders)
    except Exception:  # a broken model must not stop /health from saying so
        logger.exception("could not load the encoders")


def create_app(
    service: SearchService,
    *,
    warm: bool = True,
    ranking: RankingOptions | None = None,
    search_batch: int = DEFAULT_MAX_BATCH,
) -> web.Application:
    """The aiohttp application over `service` (`warm` loads models at startup; `ranking`: how
    offers are ranked unless a query says otherwise, default by item price; `search_batch`: at
    most this many concurrent k-NN queries joined into one store search, 1: each alone)."""
    from cumpair.search.pages import add_page_routes

    if search_batch > 1 and not isinstance(service.store, BatchedSearches):
        service.store = BatchedSearches(service.store, search_batch)

    app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
    app[SERVICE] = service
    app[RANKING] = ranking or RankingOptions()
    app.router.add_route("GET", "/search", search)
    app.router.add_route("POST", "/search", search)
    add_page_routes(app)
    app.router.add_get("/health", health)
    app.router.add_post("/match", match)
    if warm:
        app.on_startup.append(_warm)
    return app
