"""The pages of `cumpair serve` a person uses: search (text, GTIN, photo) and a product page,
with the photos they show, the price-history JSON and the watch (price alert) endpoints.

Thin aiohttp handlers over `SearchService` (queries), `views` (what is shown) and the Jinja2
templates in ``templates/``; everything the page needs is served from here, so it works with
no network. `add_page_routes(app)` registers them; `server` owns the app and the search API.
"""

from __future__ import annotations

import asyncio
import base64
import io
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from multidict import MultiDict

from cumpair.alerts.book import AlertError, WatchBook, make_watch
from cumpair.alerts.resolve import describe_watched
from cumpair.flags import parse_flag
from cumpair.search.chart import chart_legend, price_chart_svg
from cumpair.search.formatting import (
    basis_text,
    change_text,
    money_text,
    spec_label,
    spec_text,
    spec_value_text,
    when_text,
)
from cumpair.search.ranking import CONDITIONS
from cumpair.search.ranking_options import RANK_BY
from cumpair.search.server import RANKING, SERVICE, ranking_options, search_options, shown_products
from cumpair.search.service import QueryError
from cumpair.search.views import (
    TREND_DAYS,
    TREND_MIN_POINTS,
    first_photo,
    photo_file,
    product_detail,
    ranked_by,
    ranking_text,
)
from cumpair.vision.images import ImageError

PAGE_RESULTS = 10
# A product photo rarely changes: a browser keeps it a day, then revalidates it by the ETag and
# Last-Modified that FileResponse sends; the page's own CSS and script an hour.
PHOTO_CACHE = "public, max-age=86400"
STATIC_CACHE = "public, max-age=3600"
STATIC_FILES = {"style.css": "text/css", "page.js": "text/javascript"}
AVAILABILITIES = (("", "Any"), ("InStock", "In stock"), ("PreOrder", "Pre-order"))

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("cumpair.search", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
_ENV.filters.update(money=lambda v, c=None: money_text(v, c), when=when_text)
_ENV.filters.update(change=lambda v, c=None: change_text(v, c), specs=spec_text)
_ENV.filters.update(spec_label=spec_label, spec_value=spec_value_text)
_ENV.globals["availabilities"] = AVAILABILITIES
_ENV.globals["conditions"] = (("", "Any"), *((c, c) for c in CONDITIONS))
_ENV.globals["rank_by"] = RANK_BY


def _render(name: str, status: int = 200, **context: Any) -> web.Response:
    html = _ENV.get_template(name).render(**context)
    return web.Response(text=html, content_type="text/html", status=status)


def _thumbnail(image: bytes) -> str | None:
    """A small JPEG data URI of an uploaded photo, to show beside its results."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image)) as picture:
            picture = picture.convert("RGB")
            picture.thumbnail((240, 240))
            out = io.BytesIO()
            picture.save(out, "JPEG", quality=80)
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


async def search_page(request: web.Request) -> web.Response:
    """``GET /`` (text or GTIN in the query string) and ``POST /`` (a photo upload)."""
    service = request.app[SERVICE]
    params = request.query
    image: bytes | None = None
    if request.method == "POST":
        form = await request.post()
        params = form.copy()
        upload = form.get("image")
        if isinstance(upload, web.FileField):
            image = upload.file.read() or None
    form_values = {name: params.get(name, "") for name in ("text", "gtin", "shop", "max_price")}
    for name in ("availability", "condition", "rank_by", "ship_to"):
        form_values[name] = params.get(name, "")
    context: dict[str, Any] = {"form": form_values, "results": None, "error": None}
    context.update(query_photo=None, query_facts={})
    if image is None and not (form_values["text"] or form_values["gtin"]):
        return _render("search.html", **context)
    try:
        values = MultiDict(params)
        values["k"] = params.get("k") or str(PAGE_RESULTS)
        options = search_options(values)
        if image is not None:
            response = await asyncio.to_thread(service.search_image, image, **options)
            context["query_photo"] = await asyncio.to_thread(_thumbnail, image)
        elif form_values["text"]:
            response = await asyncio.to_thread(service.search_text, params["text"], **options)
        else:
            response = await asyncio.to_thread(service.search_gtin, params["gtin"], **options)
        products = shown_products(response.products, params, request.app[RANKING])
    except QueryError as exc:
        return _render("search.html", status=400, **{**context, "error": str(exc)})
    except ImageError as exc:
        error = f"unusable image: {exc}"
        return _render("search.html", status=400, **{**context, "error": error})
    results = await asyncio.to_thread(_result_rows, service, products)
    context.update(results=results, query_facts=response.facts)
    return _render("search.html", **context)


def _result_rows(service: Any, products: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for view in products:
        photo = first_photo(view, service.store, service.images_root)
        best = view.best  # the offer at the lowest price, and on what basis
        rows.append(
            {
                "view": view,
                "photo": None if photo is None else f"/images/{photo[0]}/{photo[1]}",
                "cheapest": None if best is None else best.offer,
                "basis": None if best is None else basis_text(best),
                "said": ranking_text(view.ranking, best),
                "shops": len({o.shop for o in view.offers}),
            }
        )
    return rows


class _BadId(QueryError):
    """A product id in the path that is no integer, or a bad ranking option (400, where an
    unknown id is 404)."""


def _product_id(request: web.Request) -> int:
    try:
        return int(request.match_info["product_id"])
    except ValueError:
        raise _BadId("product id must be an integer") from None


async def _detail(request: web.Request) -> Any:
    service = request.app[SERVICE]
    product_id = _product_id(request)
    explain = parse_flag(request.query.get("explain", "")) is True
    try:
        options = ranking_options(request.query, request.app[RANKING])
    except QueryError as exc:
        raise _BadId(str(exc)) from None

    def build() -> Any:
        (view,) = ranked_by([service.product(product_id, explain=explain)], options)
        return product_detail(view, service.store, service.images_root)

    return await asyncio.to_thread(build)


async def product_page(request: web.Request) -> web.Response:
    """``GET /p/{id}``: photos, specs, every offer cheapest first, the price chart, a watch."""
    try:
        detail = await _detail(request)
    except QueryError as exc:
        status = 400 if isinstance(exc, _BadId) else 404
        return _render("missing.html", status=status, message=str(exc))
    cheapest = detail.cheapest
    series = [detail.series[o.offer_id] for o in detail.view.offers if o.offer_id in detail.series]
    best = detail.view.best
    return _render(
        "product.html",
        detail=detail,
        view=detail.view,
        cheapest=cheapest,
        basis=None if best is None else basis_text(best),
        said=ranking_text(detail.view.ranking, best),
        shops=len({o.shop for o in detail.view.offers}),
        chart=price_chart_svg(series, cheapest.offer_id if cheapest else None),
        legend=chart_legend(series),
        trend_days=TREND_DAYS,
        trend_points=TREND_MIN_POINTS,
        watched=request.query.get("watched"),
        watch_error=None,
    )


def _json_error(exc: QueryError) -> web.Response:
    status = 400 if isinstance(exc, _BadId) else 404
    return web.json_response({"error": str(exc)}, status=status)


async def product_json(request: web.Request) -> web.Response:
    """``GET /products/{id}``: the product page's data as JSON."""
    try:
        detail = await _detail(request)
    except QueryError as exc:
        return _json_error(exc)
    return web.json_response(detail.to_dict())


async def history_json(request: web.Request) -> web.Response:
    """``GET /products/{id}/history``: each offer's priced history, recent trend and deal flag."""
    try:
        detail = await _detail(request)
    except QueryError as exc:
        return _json_error(exc)
    return web.json_response(
        {
            "product_id": detail.view.product_id,
            "trend": {"days": TREND_DAYS, "min_points": TREND_MIN_POINTS, "statistic": "median"},
            "series": [
                detail.series[o.offer_id].to_dict()
                for o in detail.view.offers
                if o.offer_id in detail.series
            ],
        }
    )


async def photo(request: web.Request) -> web.StreamResponse:
    """``GET /images/{offer_id}/{n}``: the n-th stored photo of an offer, cacheable."""
    service = request.app[SERVICE]
    try:
        offer_id, ordinal = int(request.match_info["offer_id"]), int(request.match_info["n"])
    except ValueError:
        raise web.HTTPBadRequest(text="offer id and photo number are integers") from None
    record = (await asyncio.to_thread(service.store.get_offers, [offer_id])).get(offer_id)
    path = None if record is None else photo_file(record, ordinal, service.images_root)
    if path is None:
        raise web.HTTPNotFound(text=f"no photo {ordinal} of offer {offer_id}")
    return web.FileResponse(path, headers={"Cache-Control": PHOTO_CACHE})


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    body = resources.files("cumpair.search").joinpath("static", name).read_bytes()
    return web.Response(
        body=body, content_type=STATIC_FILES[name], headers={"Cache-Control": STATIC_CACHE}
    )


# ---------------------------------------------------------------------- watches (alerts)
def _book(request: web.Request) -> WatchBook:
    return WatchBook.open(request.app[SERVICE].store.path)


async def _add_watch(request: web.Request, watch: Any) -> Any:
    """Save `watch` once the store is known to hold what it names (AlertError if not)."""
    store_dir = Path(request.app[SERVICE].store.path)

    def add() -> Any:
        describe_watched(store_dir, watch)
        with WatchBook.open(store_dir) as book:
            return book.add(watch)

    return await asyncio.to_thread(add)


def _watch_from(values: Any, reference: str | None = None) -> Any:
    below = values.get("below") or None
    drop = values.get("drop_pct") or None
    try:
        below = None if below is None else Decimal(str(below))
        drop = None if drop is None else float(drop)
    except (ArithmeticError, ValueError):
        raise AlertError("below and drop_pct must be numbers") from None
    return make_watch(
        reference or str(values.get("reference", "")),
        below=below,
        drop_pct=drop,
        webhook=values.get("webhook") or None,
        email=values.get("email") or None,
    )


async def watch_from_page(request: web.Request) -> web.Response:
    """``POST /p/{id}/watch``: the product page's alert form; back to the page when saved."""
    form = await request.post()
    try:
        product_id = _product_id(request)
        saved = await _add_watch(request, _watch_from(form, str(product_id)))
    except (AlertError, _BadId) as exc:
        raise web.HTTPBadRequest(text=f"cannot watch this product: {exc}") from None
    raise web.HTTPSeeOther(f"/p/{product_id}?watched={saved.id}")


async def watches_json(request: web.Request) -> web.Response:
    """``GET /watches``: every watch; ``POST /watches`` (JSON) adds one."""
    try:
        with _book(request) as book:
            if request.method == "POST":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    raise AlertError("send a JSON object: reference, below or drop_pct, webhook")
                saved = await _add_watch(request, _watch_from(body))
                return web.json_response(saved.to_dict(), status=201)
            return web.json_response([w.to_dict() for w in book.watches()])
    except AlertError as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def delete_watch(request: web.Request) -> web.Response:
    """``DELETE /watches/{id}``."""
    try:
        watch_id = int(request.match_info["watch_id"])
    except ValueError:
        return web.json_response({"error": "watch id must be an integer"}, status=400)
    try:
        with _book(request) as book:
            book.remove(watch_id)
    except AlertError as exc:
        return web.json_response({"error": str(exc)}, status=404)
    return web.json_response({"removed": watch_id})


def add_page_routes(app: web.Application) -> None:
    """Register the pages, photos, product JSON, history and watch endpoints on `app`."""
    app.router.add_get("/", search_page)
    app.router.add_post("/", search_page)
    app.router.add_get("/p/{product_id}", product_page)
    app.router.add_post("/p/{product_id}/watch", watch_from_page)
    app.router.add_get("/products/{product_id}", product_json)
    app.router.add_get("/products/{product_id}/history", history_json)
    app.router.add_get("/images/{offer_id}/{n}", photo)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_route("GET", "/watches", watches_json)
    app.router.add_route("POST", "/watches", watches_json)
    app.router.add_delete("/watches/{watch_id}", delete_watch)
