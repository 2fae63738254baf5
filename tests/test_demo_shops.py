"""The bundled demo shops: catalog ground truth, the four markups, images and misbehaviour."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import extruct
import pytest
from parsel import Selector
from PIL import Image

from cumpair.demo import cli
from cumpair.demo import server as demo_server_module
from cumpair.demo.captcha import captcha_answer, captcha_png
from cumpair.demo.catalog import (
    DEFECT_KINDS,
    DEFECT_SHOPS,
    SHOPS,
    CatalogError,
    build_catalog,
)
from cumpair.demo.images import label_lines, photo_bytes, render_label, render_product_photo
from cumpair.demo.pages import PAGE_SIZE, category_url
from cumpair.demo.server import DemoServer, DemoServerError
from cumpair.identifiers import normalize_gtin
from cumpair_scraper.settings import PLAYWRIGHT_LAUNCH_OPTIONS


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the tests look at the 302 itself


def fetch(
    url: str, data: dict | None = None, cookie: str | None = None, headers: dict | None = None
) -> Reply:
    """GET (or POST a form to) `url` without following redirects; errors are replies too."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(
        url, data=body, headers={"User-Agent": "demo-tests", **(headers or {})}
    )
    if cookie:
        request.add_header("Cookie", cookie)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


# -- catalog ----------------------------------------------------------------------------------


def test_same_seed_gives_same_offers_and_same_image_bytes():
    first, second = build_catalog(seed=11), build_catalog(seed=11)
    assert first.offers == second.offers
    assert first.products == second.products
    photo_bytes.cache_clear()
    a = photo_bytes(first.offers[0])
    photo_bytes.cache_clear()
    assert photo_bytes(second.offers[0]) == a
    assert render_label(first.offers[1])[0].tobytes() == render_label(second.offers[1])[0].tobytes()
    assert build_catalog(seed=12).offers != first.offers


def test_default_catalog_has_enough_offers_spread_over_every_shop():
    catalog = build_catalog()
    assert len(catalog.offers) >= 200
    for shop in SHOPS:
        assert len(catalog.offers_by_shop(shop)) >= 45, shop
    per_product = Counter(offer.product_id for offer in catalog.offers)
    assert set(per_product) == {p.product_id for p in catalog.products}
    assert set(per_product.values()) <= {2, 3, 4}
    for product in catalog.products:
        shops = [offer.shop for offer in catalog.offers_for_product(product.product_id)]
        assert len(shops) == len(set(shops))  # a shop lists a product once
        prices = {offer.price for offer in catalog.offers_for_product(product.product_id)}
        assert len(prices) > 1 or len(shops) == 1
    assert len({p.clipart for p in catalog.products}) == len(catalog.products)
    assert len({(o.shop, o.sku) for o in catalog.offers}) == len(catalog.offers)
    # Every shop quotes euros, but for the offer that exercises ranking across currencies.
    assert {o.currency for o in catalog.offers if o.rule != "other_currency"} == {"EUR"}
    assert catalog.rule_offer("other_currency").currency == "USD"


def test_default_catalog_places_two_defects_of_each_kind_where_they_make_sense():
    catalog = build_catalog()
    for kind in DEFECT_KINDS:
        offers = catalog.defective_offers(kind)
        assert len(offers) == 2, kind
        assert all(offer.shop in DEFECT_SHOPS[kind] for offer in offers)
    assert not [o for o in catalog.offers_by_shop("nebula") if o.defect]
    for offer in catalog.defective_offers("bad_gtin"):
        assert offer.gtin_printed is not None
        assert normalize_gtin(offer.gtin_printed) is None
    for offer in catalog.offers:
        if offer.gtin_printed and offer.defect != "bad_gtin":
            assert normalize_gtin(offer.gtin_printed) == offer.product.gtin
    assert len(catalog.expected_items()) == len(catalog.offers) - 4


def test_some_offers_print_no_gtin_and_bluepeak_prints_upc_for_leading_zero_gtins():
    catalog = build_catalog()
    assert [o for o in catalog.offers if o.gtin_printed is None]
    upcs = [
        o
        for o in catalog.offers_by_shop("bluepeak")
        if o.gtin_printed and len(o.gtin_printed) == 12
    ]
    assert upcs
    assert all(o.product.gtin == "0" + o.gtin_printed for o in upcs)
    assert not [
        o for o in catalog.offers if o.shop != "bluepeak" and len(o.gtin_printed or "") == 12
    ]


def test_titles_are_worded_differently_per_shop():
    catalog = build_catalog()
    product = next(
        p for p in catalog.products if len(catalog.offers_for_product(p.product_id)) == 4
    )
    titles = {offer.title for offer in catalog.offers_for_product(product.product_id)}
    assert len(titles) == 4
    assert all(product.model in title for title in titles)


def test_large_catalog_builds_with_unique_models_and_skus():
    catalog = build_catalog(n_products=20_000)
    assert len({p.model for p in catalog.products}) == 20_000
    assert len({(o.shop, o.item_id) for o in catalog.offers}) == len(catalog.offers)
    assert len(catalog.defective_offers()) == 2 * len(DEFECT_KINDS)


@pytest.mark.parametrize(
    "kwargs", [{"n_products": 0}, {"n_products": "80"}, {"defects_per_kind": -1}]
)
def test_bad_catalog_arguments_raise_a_clear_error(kwargs):
    with pytest.raises(CatalogError):
        build_catalog(**kwargs)


# -- server: every shop ------------------------------------------------------------------------


@pytest.mark.parametrize("shop", SHOPS)
def test_robots_txt_disallows_private_on_every_host(demo_server, shop):
    reply = fetch(demo_server.base_url(shop) + "/robots.txt")
    assert reply.status == 200
    lines = reply.text.splitlines()
    assert lines[:2] == ["User-agent: *", "Disallow: /private/"]
    has_sitemap = f"Sitemap: {demo_server.base_url(shop)}/sitemap.xml" in lines
    assert has_sitemap == (shop == "bluepeak")
    home = fetch(demo_server.base_url(shop) + "/")
    assert 'href="/private/account"' in home.text
    demo_server.reset_hits()
    assert fetch(demo_server.base_url(shop) + "/private/account").status == 200
    assert [(h.shop, h.path, h.status) for h in demo_server.hits] == [
        (shop, "/private/account", 200)
    ]


def _walk_html_shop(demo_server: DemoServer, shop: str) -> list[str]:
    """Follow home -> categories -> rel=next like a crawler; return product paths in order."""
    base = demo_server.base_url(shop)
    home = Selector(fetch(base + "/").text)
    found: list[str] = []
    link_css = (
        "div.item h3 a::attr(href)" if shop == "cornerstore" else "a.product-link::attr(href)"
    )
    for href in home.css("a.category::attr(href)").getall():
        url = base + href
        while url:
            reply = fetch(url)
            assert reply.status == 200, url
            page = Selector(reply.text)
            assert page.css("title::text").get()
            links = page.css(link_css).getall()
            assert 0 < len(links) <= PAGE_SIZE
            found += links
            next_href = page.css('a[rel="next"]::attr(href)').get()
            url = base + next_href if next_href else None
    return found


@pytest.mark.parametrize("shop", ["northwind", "bluepeak", "cornerstore"])
def test_pagination_walk_reaches_every_product_exactly_once(demo_server, shop):
    found = _walk_html_shop(demo_server, shop)
    expected = [offer.url_path for offer in demo_server.catalog.offers_by_shop(shop)]
    assert sorted(found) == sorted(expected)


def test_nebula_api_pagination_reaches_every_product_exactly_once(demo_server):
    base = demo_server.base_url("nebula")
    found = []
    for category in demo_server.catalog.categories("nebula"):
        page = 1
        while True:
            data = json.loads(
                fetch(f"{base}/api/catalog?category={category.slug}&page={page}").body
            )
            found += [item["url"] for item in data["items"]]
            if not data["next"]:
                break
            assert data["next"] == category_url("nebula", category.slug, page + 1)
            page += 1
    assert sorted(found) == sorted(o.url_path for o in demo_server.catalog.offers_by_shop("nebula"))


def test_unknown_pages_answer_404(demo_server):
    base = demo_server.base_url("northwind")
    assert fetch(base + "/p/NW-999999.html").status == 404
    assert fetch(base + "/category/power-tools?page=99").status == 404
    assert fetch(base + "/category/nope").status == 404
    assert fetch(base + "/images/nope.png").status == 404
    assert fetch(demo_server.base_url("cornerstore") + "/item.php?id=x").status == 404
    assert fetch(demo_server.base_url("nebula") + "/api/items/zzz").status == 404


# -- server: the four markups ------------------------------------------------------------------


def _structured(reply: Reply, url: str) -> dict:
    return extruct.extract(reply.text, base_url=url, syntaxes=["json-ld", "microdata", "opengraph"])


def test_northwind_product_pages_carry_json_ld_products(demo_server):
    base = demo_server.base_url("northwind")
    for offer in demo_server.catalog.offers_by_shop("northwind"):
        url = base + offer.url_path
        reply = fetch(url)
        assert reply.status == 200
        page = Selector(reply.text)
        assert page.css("h1.product-title::text").get() == offer.title
        if offer.defect == "broken_jsonld":
            with pytest.raises(ValueError):
                extruct.extract(reply.text, syntaxes=["json-ld"], errors="strict")
            assert page.css("span.price::text").get() == f"€{offer.price}"
            continue
        data = _structured(reply, url)
        assert not data["microdata"]
        (product,) = data["json-ld"]
        assert product["@type"] == "Product"
        assert product["sku"] == offer.sku
        assert product["mpn"] == offer.product.model
        assert product["brand"] == {"@type": "Brand", "name": offer.product.brand}
        assert product["image"] == [base + path for path in offer.image_paths]
        assert product["offers"]["availability"] == "https://schema.org/" + offer.availability
        assert product.get("gtin13") == offer.gtin_printed
        if offer.defect == "missing_price":
            assert "price" not in product["offers"]
            assert not page.css("span.price")
        elif offer.defect == "bad_price":
            assert product["offers"]["price"] == "call us"
        else:
            assert Decimal(product["offers"]["price"]) == offer.price
            assert product["offers"]["priceCurrency"] == offer.currency


def test_bluepeak_product_pages_carry_microdata_only(demo_server):
    base = demo_server.base_url("bluepeak")
    seen_upc = False
    for offer in demo_server.catalog.offers_by_shop("bluepeak"):
        url = base + offer.url_path
        data = _structured(fetch(url), url)
        assert not data["json-ld"]
        (product,) = data["microdata"]
        assert product["type"] == "https://schema.org/Product"
        props = product["properties"]
        assert props["name"] == offer.title
        assert props["sku"] == offer.sku
        assert props["mpn"] == offer.product.model
        assert props["brand"]["properties"]["name"] == offer.product.brand
        assert props["image"] == [base + path for path in offer.image_paths]
        gtin = props.get("gtin13") or props.get("gtin12")
        assert gtin == offer.gtin_printed
        seen_upc |= "gtin12" in props
        offers = props["offers"]["properties"]
        assert offers["availability"] == "https://schema.org/" + offer.availability
        if offer.defect is None or offer.defect == "bad_gtin":
            assert Decimal(offers["price"]) == offer.price
            assert offers["priceCurrency"] == offer.currency
        if offer.condition is not None:
            assert offers["itemCondition"] == f"https://schema.org/{offer.condition}Condition"
    assert seen_upc


def test_bluepeak_sitemap_lists_every_product(demo_server):
    base = demo_server.base_url("bluepeak")
    reply = fetch(base + "/sitemap.xml")
    assert reply.status == 200
    locs = Selector(reply.text, type="xml").xpath("//*[local-name()='loc']/text()").getall()
    expected = [base + o.url_path for o in demo_server.catalog.offers_by_shop("bluepeak")]
    assert sorted(locs) == sorted(expected)


def test_cornerstore_product_pages_have_no_structured_data(demo_server):
    base = demo_server.base_url("cornerstore")
    for offer in demo_server.catalog.offers_by_shop("cornerstore"):
        url = base + offer.url_path
        reply = fetch(url)
        data = _structured(reply, url)
        assert not data["json-ld"] and not data["microdata"] and not data["opengraph"]
        page = Selector(reply.text)
        assert page.css("h1.prod-title::text").get() == offer.title
        specs = dict(
            zip(
                page.css("table.specs th::text").getall(),
                page.css("table.specs td::text").getall(),
                strict=True,
            )
        )
        assert specs.get("EAN") == offer.gtin_printed
        assert specs["Model"] == offer.product.model
        assert page.css("img.gallery::attr(src)").get() == offer.image_path(offer.photo_name)
        if offer.defect is None:
            price = page.css("span.prod-price::text").get()
            assert re.fullmatch(r"\d{1,3}(\.\d{3})*,\d\d €", price)
            assert Decimal(price[:-2].replace(".", "").replace(",", ".")) == offer.price


def test_nebula_html_holds_no_product_data_while_its_api_does(demo_server):
    base = demo_server.base_url("nebula")
    offer = demo_server.catalog.offers_by_shop("nebula")[0]
    shell = fetch(base + offer.url_path).text
    for fact in (offer.title, offer.sku, offer.product.model, str(offer.price), offer.photo_name):
        assert fact not in shell
    assert '<div id="app"></div>' in shell and '<script src="/static/app.js">' in shell
    listing = fetch(base + category_url("nebula", offer.product.category)).text
    assert offer.url_path not in listing and offer.title not in listing
    item = json.loads(fetch(f"{base}/api/items/{offer.item_id}").body)
    assert item["name"] == offer.title
    assert Decimal(item["price"]) == offer.price
    assert item["images"][0] == base + offer.image_path(offer.photo_name)
    script = fetch(base + "/static/app.js")
    assert script.status == 200 and "dataset.ready" in script.text


# -- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shop", "photo_format"),
    [
        ("northwind", "JPEG"),
        ("bluepeak", "PNG"),
        ("cornerstore", "JPEG"),
        ("nebula", "PNG"),
    ],
)
def test_images_decode_at_the_shop_formats(demo_server, shop, photo_format):
    offer = demo_server.catalog.offers_by_shop(shop)[0]
    base = demo_server.base_url(shop)
    photo = fetch(f"{base}/images/{offer.photo_name}")
    with Image.open(io.BytesIO(photo.body)) as image:
        assert (image.format, image.size) == (photo_format, (480, 480))
    assert photo.headers["Content-Type"] == f"image/{photo_format.lower()}"
    label = fetch(f"{base}/images/{offer.label_name}")
    with Image.open(io.BytesIO(label.body)) as image:
        assert (image.format, image.size) == ("PNG", (640, 360))


def test_images_carry_an_etag_and_answer_a_matching_revalidation_with_304(demo_server):
    offer = demo_server.catalog.offers_by_shop("northwind")[0]
    url = f"{demo_server.base_url('northwind')}/images/{offer.photo_name}"
    first = fetch(url)
    etag = first.headers["Etag"]  # as aiohttp spells it
    assert first.status == 200 and etag.startswith('"')
    again = fetch(url, headers={"If-None-Match": etag})
    assert (again.status, again.body, again.headers["Etag"]) == (304, b"", etag)
    other = fetch(url, headers={"If-None-Match": '"not-this-one", W/"nor-this"'})
    assert other.status == 200 and other.body == first.body


def test_pages_link_versioned_image_urls_served_fresh_for_a_year_and_others_no_cache(demo_server):
    """As an image CDN serves them: the URL the pages link carries a version that changes with
    the photo, and is fresh for a year; the bare or an outdated URL must be revalidated."""
    offer = demo_server.catalog.offers_by_shop("northwind")[0]
    base = demo_server.base_url("northwind")
    path = offer.image_path(offer.photo_name)
    assert path.startswith(f"/images/{offer.photo_name}?v=")
    versioned = fetch(base + path)
    assert versioned.headers["Cache-Control"] == f"public, max-age={365 * 24 * 3600}"
    again = fetch(base + path, headers={"If-None-Match": versioned.headers["Etag"]})
    assert again.status == 304
    assert again.headers["Cache-Control"] == versioned.headers["Cache-Control"]
    for other in (f"/images/{offer.photo_name}", f"/images/{offer.photo_name}?v=0ld"):
        assert fetch(base + other).headers["Cache-Control"] == "no-cache"
    product = dataclasses.replace(offer.product, clipart="other")
    repictured = dataclasses.replace(offer, product=product)
    assert repictured.image_path(offer.photo_name) != path
    assert dataclasses.replace(offer, price=offer.price + 1).image_path(offer.photo_name) == path


def test_a_matching_revalidation_is_answered_without_rendering_the_image_again(
    demo_server_factory, monkeypatch
):
    """A 304 costs the shop what it costs a CDN (a look-up), not a render: the rendered bytes
    are cached for a few thousand images only, and a large catalog's recrawl asks for all."""
    server = demo_server_factory()
    offer = server.catalog.offers_by_shop("bluepeak")[0]
    url = f"{server.base_url('bluepeak')}/images/{offer.photo_name}"
    etag = fetch(url).headers["Etag"]
    rendered = []
    monkeypatch.setattr(
        demo_server_module, "image_response", lambda *args: rendered.append(args) or (b"x", "")
    )
    again = fetch(url, headers={"If-None-Match": etag})
    assert (again.status, again.headers["Etag"], rendered) == (304, etag, [])
    assert fetch(url, headers={"If-None-Match": '"stale"'}).status == 200  # no match: rendered
    assert len(rendered) == 1


def test_same_product_is_framed_differently_per_shop():
    catalog = build_catalog()
    product = next(
        p for p in catalog.products if len(catalog.offers_for_product(p.product_id)) == 4
    )
    photos = [render_product_photo(o) for o in catalog.offers_for_product(product.product_id)]
    assert len({p.tobytes() for p in photos}) == 4


def _tesseract_text(image: Image.Image) -> str:
    tesserocr = pytest.importorskip("tesserocr")
    with tesserocr.PyTessBaseAPI(path="/usr/share/tesseract-ocr/5/tessdata/", lang="eng") as api:
        api.SetImage(image)
        return api.GetUTF8Text()


@pytest.mark.parametrize("shop", SHOPS)
def test_label_truth_matches_what_the_label_prints(shop):
    catalog = build_catalog()
    offer = next(o for o in catalog.offers_by_shop(shop) if o.gtin_printed and o.product.power_w)
    image, truth = render_label(offer)
    lines, _ = label_lines(offer)
    text = _tesseract_text(image)

    def printed(token: str) -> bool:  # as a whole number/word: Tesseract may drop a space
        return re.search(rf"(?<![\w.]){re.escape(token)}(?![\d])", text) is not None

    for line in lines:  # every number exactly, nearly every word (Tesseract reads lb as Ib)
        tokens = re.findall(r"[\w.%-]+", line)
        assert all(printed(t) for t in tokens if re.search(r"\d", t)), (line, text)
        assert sum(printed(t) for t in tokens) >= len(tokens) - 1, (line, text)
    assert truth["brand"] == offer.product.brand and truth["model"] == offer.product.model
    assert truth["gtin"] == offer.product.gtin
    assert truth["power_w"] == offer.product.power_w
    if shop == "bluepeak":  # imperial: truth is what is printed, converted (rounding included)
        assert lines[2].endswith((" lb", " oz")) and lines[3].endswith(" in")
        assert truth["weight_g"] == pytest.approx(offer.product.weight_g, rel=0.05)
        assert truth["dimensions_mm"] == pytest.approx(list(offer.product.dimensions_mm), abs=1.3)
    else:
        assert truth["weight_g"] == offer.product.weight_g
        assert truth["dimensions_mm"] == list(offer.product.dimensions_mm)
    assert truth["materials"] == [
        {"name": m.name, "percent": m.percent} for m in offer.product.materials
    ]


def test_labels_command_writes_pngs_and_truth(tmp_path):
    assert cli.main(["labels", "--out", str(tmp_path), "--limit", "5"]) == 0
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert len(truth) == 5
    for name, facts in truth.items():
        with Image.open(tmp_path / name) as image:
            assert image.size == (640, 360)
        assert {"brand", "model", "weight_g", "dimensions_mm"} <= set(facts)


def test_export_command_writes_one_json_line_per_offer(tmp_path):
    out = tmp_path / "offers.jsonl"
    assert cli.main(["export", "--products", "300", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    catalog = build_catalog(300)
    assert len(records) == len(catalog.offers)
    assert records[0]["product_id"] == catalog.offers[0].product_id
    assert {r["shop"] for r in records} == set(SHOPS)


# -- misbehaviour ------------------------------------------------------------------------------


def test_every_nth_request_per_host_is_rate_limited(demo_server_factory):
    server = demo_server_factory(rate_limit_every=3, retry_after=7)
    north, blue = server.base_url("northwind"), server.base_url("bluepeak")
    statuses = [fetch(north + "/").status for _ in range(6)]
    assert statuses == [200, 200, 429, 200, 200, 429]
    assert fetch(blue + "/").status == 200  # counted per host
    limited = fetch(north + "/robots.txt"), fetch(north + "/robots.txt"), fetch(north + "/")
    assert [r.status for r in limited] == [200, 200, 429]
    assert limited[2].headers["Retry-After"] == "7"


def test_challenge_first_blocks_only_the_first_visit_of_a_product_page(demo_server_factory):
    server = demo_server_factory(challenge="first")
    offer = server.catalog.offers_by_shop("cornerstore")[0]
    url = server.base_url("cornerstore") + offer.url_path
    first = fetch(url)
    assert first.status == 403
    assert Selector(first.text).css("title::text").get() == "Security check"
    assert fetch(url).status == 200
    assert fetch(server.base_url("cornerstore") + "/").status == 200  # listings never challenge


def _challenge_form(reply: Reply) -> dict[str, str]:
    page = Selector(reply.text)
    form = page.css("form#challenge")
    assert form.attrib["method"] == "post" and form.attrib["action"] == "/challenge"
    token = form.css("input[name=token]::attr(value)").get()
    assert form.css("img.captcha::attr(src)").get() == f"/challenge/{token}.png"
    assert form.css("input[name=answer]")
    return {"token": token, "next": form.css("input[name=next]::attr(value)").get()}


def test_challenge_solve_needs_the_captcha_answer_then_a_cookie(demo_server_factory):
    server = demo_server_factory(challenge="solve", challenge_shops=("northwind",))
    base = server.base_url("northwind")
    offer = server.catalog.offers_by_shop("northwind")[0]
    blocked = fetch(base + offer.url_path)
    assert blocked.status == 403
    form = _challenge_form(blocked)
    assert form["next"] == offer.url_path
    captcha = fetch(f"{base}/challenge/{form['token']}.png")
    assert captcha.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(captcha.body)).format == "PNG"

    wrong = fetch(base + "/challenge", data={**form, "answer": "WRONG"})
    assert wrong.status == 403
    retry = _challenge_form(wrong)
    assert retry["token"] != form["token"] and retry["next"] == offer.url_path

    answer = captcha_answer(retry["token"]).lower()  # answers are case-insensitive
    solved = fetch(base + "/challenge", data={**retry, "answer": answer})
    assert solved.status == 302 and solved.headers["Location"] == offer.url_path
    cookie = solved.headers["Set-Cookie"].split(";")[0]
    assert cookie.startswith("demo_pass=")
    assert fetch(base + offer.url_path).status == 403  # still blocked without the cookie
    assert fetch(base + offer.url_path, cookie=cookie).status == 200
    assert fetch(base + offer.url_path, cookie="demo_pass=forged").status == 403
    other = server.catalog.offers_by_shop("bluepeak")[0]
    assert fetch(server.base_url("bluepeak") + other.url_path).status == 200  # not challenged


def test_captcha_text_is_readable_by_tesseract():
    tokens = [f"{i:016x}" for i in range(6)]
    read = 0
    for token in tokens:
        image = Image.open(io.BytesIO(captcha_png(token)))
        text = re.sub(r"\s", "", _tesseract_text(image)).upper()
        read += text == captcha_answer(token)
        assert 5 <= len(captcha_answer(token)) <= 6
        assert not set(captcha_answer(token)) & set("0O1I")
    assert read >= 4  # plain Tesseract, no whitelist: our OCR chain does better


def test_bad_server_options_and_a_taken_port_raise_clear_errors(demo_server):
    with pytest.raises(DemoServerError, match="challenge"):
        DemoServer(challenge="always")
    with pytest.raises(DemoServerError, match="unknown"):
        DemoServer(challenge="solve", challenge_shops=("amazon",))
    with pytest.raises(DemoServerError, match=f"port {demo_server.port}"):
        DemoServer(catalog=demo_server.catalog, port=demo_server.port).start()
    with socket.create_connection(("127.0.0.24", demo_server.port), timeout=5):
        pass  # the session server still listens


# -- the JavaScript shop in a real browser ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_nebula_renders_products_in_headless_chromium(demo_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    offer = demo_server.catalog.offers_by_shop("nebula")[3]
    base = demo_server.base_url("nebula")
    with sync_api.sync_playwright() as playwright:
        # The same browser the crawl uses (Debian's Chromium, offline-friendly flags).
        browser = playwright.chromium.launch(**PLAYWRIGHT_LAUNCH_OPTIONS)
        try:
            page = browser.new_page()
            page.goto(base + offer.url_path)
            page.wait_for_selector('body[data-ready="1"]', timeout=20_000)
            assert page.text_content("#name") == offer.title
            assert Decimal(page.text_content("#price")) == offer.price
            assert page.get_attribute("#price", "data-currency") == "EUR"
            assert page.text_content("#mpn") == offer.product.model
            photo = base + offer.image_path(offer.photo_name)
            assert page.get_attribute("img.photo", "src") == photo
            assert page.title() == f"{offer.title} - Nebula"

            page.goto(base + category_url("nebula", offer.product.category))
            page.wait_for_selector('body[data-ready="1"]', timeout=20_000)
            tiles = page.eval_on_selector_all(
                "a.tile", "els => els.map(e => e.getAttribute('href'))"
            )
            assert 0 < len(tiles) <= PAGE_SIZE
        finally:
            browser.close()
