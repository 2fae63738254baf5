"""The aiohttp server of the four demo shops, each on its own loopback address.

`DemoServer` runs the shops on a background thread with its own event loop so tests and the
`cumpair demo serve` command can drive them from synchronous code; it records every request
(`hits`) and can misbehave on request (429 + Retry-After, a captcha challenge page).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from aiohttp import web

from cumpair.demo import pages
from cumpair.demo.captcha import CaptchaTokenError, answer_matches, captcha_png, new_token
from cumpair.demo.catalog import SHOP_HOSTS, SHOPS, Catalog, DemoOffer, build_catalog
from cumpair.demo.images import image_response

DEFAULT_PORT = 8070
CHALLENGE_MODES = ("first", "solve")
PASS_COOKIE = "demo_pass"
STATIC_DIR = Path(__file__).with_name("static")
#: How long a versioned image URL (`DemoOffer.image_path`) is served as fresh: a year, as image
#: CDNs serve URLs that change with the file (Shopify's ``?v=``). An unversioned or outdated URL
#: is ``no-cache``: its bytes may change under it, so a cache must revalidate it every time.
IMAGE_MAX_AGE_S = 365 * 24 * 3600
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Which shop an aiohttp application serves (one application per shop address).
SHOP_KEY = web.AppKey("shop", str)


def _etags(header: str) -> set[str]:
    """The entity tags an If-None-Match header lists (weak or strong, quotes removed)."""
    return {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",") if tag.strip()}


class DemoServerError(RuntimeError):
    """The demo shops cannot start (address in use, bad option)."""


@dataclass(frozen=True)
class Hit:
    """One request as the server answered it."""

    shop: str
    method: str
    path: str  # path with query string
    status: int
    user_agent: str
    at: float = 0.0  # time.monotonic() when the request arrived (a pace is measured on it)


class _ShopState:
    """Per-shop mutable state; touched only from the server's event loop thread."""

    def __init__(self) -> None:
        self.requests = 0
        self.challenged_paths: set[str] = set()
        self.passes: set[str] = set()


class DemoServer:
    """Serve the demo shops at http://127.0.0.21..24:`port` until `stop()`.

    rate_limit_every: every Nth request to a host (counted per host) answers 429.
    challenge: "first" blocks the first request of each product page with the challenge page;
    "solve" blocks product pages until the client holds the cookie a solved captcha sets.
    challenge_shops: the shops that challenge (default: all).
    """

    def __init__(
        self,
        catalog: Catalog | None = None,
        port: int = DEFAULT_PORT,
        rate_limit_every: int | None = None,
        retry_after: int = 1,
        challenge: str | None = None,
        challenge_shops: tuple[str, ...] | None = None,
    ) -> None:
        if rate_limit_every is not None and rate_limit_every < 1:
            raise DemoServerError(f"rate_limit_every must be >= 1, got {rate_limit_every}")
        if challenge is not None and challenge not in CHALLENGE_MODES:
            raise DemoServerError(f"challenge must be one of {CHALLENGE_MODES}, got {challenge!r}")
        unknown = set(challenge_shops or ()) - set(SHOPS)
        if unknown:
            raise DemoServerError(f"unknown challenge shops: {sorted(unknown)}")
        if not 0 < port < 65536:
            raise DemoServerError(f"port out of range: {port}")
        self.catalog = catalog if catalog is not None else build_catalog()
        self.port = port
        self.rate_limit_every = rate_limit_every
        self.retry_after = retry_after
        self.challenge = challenge
        self.challenge_shops = tuple(challenge_shops) if challenge_shops else SHOPS
        self._hits: list[Hit] = []
        self._hits_lock = threading.Lock()
        self._state: dict[str, _ShopState] = defaultdict(_ShopState)
        # The ETag of every image served, by what renders it (the offer, which a changed
        # catalog replaces) and its file name; tens of bytes an image.
        self._image_etags: dict[tuple[DemoOffer, str], str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    # -- public API -----------------------------------------------------------------------

    def base_url(self, shop: str) -> str:
        if shop not in SHOP_HOSTS:
            raise KeyError(f"unknown shop {shop!r}; shops are {', '.join(SHOPS)}")
        return f"http://{SHOP_HOSTS[shop]}:{self.port}"

    @property
    def hits(self) -> list[Hit]:
        """A snapshot of every request answered so far, in order."""
        with self._hits_lock:
            return list(self._hits)

    def reset_hits(self) -> None:
        with self._hits_lock:
            self._hits.clear()

    def start(self) -> Self:
        """Start serving; returns once all four addresses listen (raises DemoServerError)."""
        if self._thread is not None:
            raise DemoServerError("demo server already started")
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_sites())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                loop.run_until_complete(self._cleanup())
                loop.close()
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._cleanup())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="cumpair-demo-shops", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            exc = failure[0]
            if isinstance(exc, OSError):
                raise DemoServerError(
                    f"cannot listen on port {self.port} of 127.0.0.21-24: {exc.strerror or exc} "
                    "(another demo server running? pick another --port)"
                ) from exc
            raise exc
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread (idempotent)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- plumbing -------------------------------------------------------------------------

    async def _start_sites(self) -> None:
        for shop in SHOPS:
            runner = web.AppRunner(self._make_app(shop), access_log=None)
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, SHOP_HOSTS[shop], self.port).start()

    async def _cleanup(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    def _make_app(self, shop: str) -> web.Application:
        app = web.Application(middlewares=[self._record_middleware, self._rate_limit_middleware])
        app[SHOP_KEY] = shop
        routes = [
            web.get("/", self._home),
            web.get("/robots.txt", self._robots),
            web.get("/private/{tail:.*}", self._private),
            web.get("/images/{name}", self._image),
            web.get("/challenge/{token}.png", self._captcha_image),
            web.post("/challenge", self._challenge_answer),
        ]
        if shop == "northwind":
            routes += [
                web.get("/category/{slug}", self._category),
                web.get("/p/{item}.html", self._product),
            ]
        elif shop == "bluepeak":
            routes += [
                web.get("/c/{slug}/{page:\\d+}", self._category),
                web.get("/products/{item}", self._product),
                web.get("/sitemap.xml", self._sitemap),
            ]
        elif shop == "cornerstore":
            routes += [web.get("/shop/{slug}", self._category), web.get("/item.php", self._product)]
        else:
            routes += [
                web.get("/shop/{slug}", self._category),
                web.get("/item/{item}", self._product),
                web.get("/api/catalog", self._api_catalog),
                web.get("/api/items/{item}", self._api_item),
                web.get("/static/app.js", self._app_js),
            ]
        app.add_routes(routes)
        return app

    @web.middleware
    async def _record_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        status, arrived = 500, time.monotonic()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            hit = Hit(
                request.app[SHOP_KEY],
                request.method,
                request.path_qs,
                status,
                request.headers.get("User-Agent", ""),
                arrived,
            )
            with self._hits_lock:
                self._hits.append(hit)

    @web.middleware
    async def _rate_limit_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        state = self._state[request.app[SHOP_KEY]]
        state.requests += 1
        if self.rate_limit_every and state.requests % self.rate_limit_every == 0:
            return web.Response(
                status=429,
                text="Too many requests\n",
                headers={"Retry-After": str(self.retry_after)},
            )
        return await handler(request)

    def _shop(self, request: web.Request) -> str:
        return request.app[SHOP_KEY]

    @staticmethod
    def _html(text: str, status: int = 200) -> web.Response:
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    async def _home(self, request: web.Request) -> web.Response:
        return self._html(pages.home_page(self.catalog, self._shop(request)))

    async def _robots(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        return web.Response(text=pages.robots_txt(shop, self.base_url(shop)))

    async def _private(self, request: web.Request) -> web.Response:
        return self._html(pages.private_page(self._shop(request)))

    async def _sitemap(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        xml = pages.sitemap_xml(self.catalog, shop, self.base_url(shop))
        return web.Response(text=xml, content_type="application/xml")

    @staticmethod
    def _page_number(request: web.Request, name: str) -> int:
        raw = request.match_info.get(name) or request.query.get(name, "1")
        if not raw.isdigit():
            raise web.HTTPNotFound(text=f"bad page number {raw!r}\n")
        return int(raw)

    async def _category(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        param = {"northwind": "page", "bluepeak": "page", "cornerstore": "p", "nebula": "page"}
        page = self._page_number(request, param[shop])
        try:
            return self._html(
                pages.category_page(self.catalog, shop, request.match_info["slug"], page)
            )
        except pages.PageNotFound as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from exc

    def _offer_or_404(self, request: web.Request) -> DemoOffer:
        shop = self._shop(request)
        item = request.match_info.get("item") or request.query.get("id", "")
        offer = self.catalog.offer(shop, item)
        if offer is None:
            raise web.HTTPNotFound(text=f"no item {item!r}\n")
        return offer

    def _challenge_response(self, request: web.Request) -> web.Response | None:
        """The challenge page when this product request must be challenged, else None."""
        shop = self._shop(request)
        if self.challenge is None or shop not in self.challenge_shops:
            return None
        state = self._state[shop]
        if self.challenge == "first":
            if request.path_qs in state.challenged_paths:
                return None
            state.challenged_paths.add(request.path_qs)
        elif request.cookies.get(PASS_COOKIE) in state.passes:
            return None
        return self._html(pages.challenge_page(shop, new_token(), request.path_qs), status=403)

    async def _product(self, request: web.Request) -> web.Response:
        offer = self._offer_or_404(request)
        challenge = self._challenge_response(request)
        if challenge is not None:
            return challenge
        shop = offer.shop
        if shop == "northwind":
            return self._html(pages.northwind_product(offer, self.base_url(shop)))
        if shop == "bluepeak":
            return self._html(pages.bluepeak_product(offer, self.base_url(shop)))
        if shop == "cornerstore":
            return self._html(pages.cornerstore_product(offer))
        return self._html(pages.nebula_item_shell(self.catalog))

    async def _api_catalog(self, request: web.Request) -> web.Response:
        page = self._page_number(request, "page")
        try:
            data = pages.nebula_catalog_json(self.catalog, request.query.get("category", ""), page)
        except pages.PageNotFound as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from exc
        return web.json_response(data)

    async def _api_item(self, request: web.Request) -> web.Response:
        offer = self._offer_or_404(request)
        return web.json_response(pages.nebula_item_json(offer, self.base_url(offer.shop)))

    async def _app_js(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "app.js", headers={"Content-Type": "text/javascript"})

    async def _image(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        offer = self.catalog.offer_for_image(self._shop(request), name)
        if offer is None:
            raise web.HTTPNotFound(text=f"no image {name!r}\n")
        # A strong validator of the bytes, as a real shop's CDN sends: a crawler revalidating
        # its stored copy (If-None-Match) gets a body-less 304 unless the picture changed. Like
        # a CDN's, it is answered from what the server knows of the file, without rendering
        # it again (the rendered bytes are cached only for the last few thousand images). The
        # versioned URL its pages link is fresh for IMAGE_MAX_AGE_S; any other is no-cache.
        versioned = request.path_qs == offer.image_path(name)
        cache = {"Cache-Control": f"public, max-age={IMAGE_MAX_AGE_S}" if versioned else "no-cache"}
        wanted = _etags(request.headers.get("If-None-Match", ""))
        etag = self._image_etags.get((offer, name))
        if etag is None or etag not in wanted:
            # Rendering takes tens of milliseconds: keep it off the loop serving the others.
            body, mime = await asyncio.to_thread(image_response, offer, name)
            etag = self._image_etags[(offer, name)] = hashlib.sha256(body).hexdigest()[:32]
            if etag not in wanted:
                response = web.Response(body=body, content_type=mime, headers=cache)
                response.etag = etag
                return response
        response = web.Response(status=304, headers=cache)
        response.etag = etag
        return response

    async def _captcha_image(self, request: web.Request) -> web.Response:
        try:
            body = await asyncio.to_thread(captcha_png, request.match_info["token"])
        except CaptchaTokenError as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from exc
        return web.Response(
            body=body, content_type="image/png", headers={"Cache-Control": "no-store"}
        )

    async def _challenge_answer(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        form = await request.post()
        token, answer = str(form.get("token", "")), str(form.get("answer", ""))
        next_path = str(form.get("next", "/"))
        if not next_path.startswith("/") or next_path.startswith("//"):
            next_path = "/"  # only ever redirect within this shop
        if not answer_matches(token, answer):
            page = pages.challenge_page(shop, new_token(), next_path, wrong=True)
            return self._html(page, status=403)
        value = secrets.token_hex(12)
        self._state[shop].passes.add(value)
        response = web.Response(status=302, headers={"Location": next_path})
        response.set_cookie(PASS_COOKIE, value, httponly=True, path="/")
        return response
