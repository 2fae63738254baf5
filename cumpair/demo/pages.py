"""HTML, JSON and text bodies of the four demo shops, each in its own markup style.

northwind: schema.org JSON-LD; bluepeak: microdata only; cornerstore: plain HTML with no
structured data; nebula: shells whose data arrives from `/api/...` through `static/app.js`.
Pure functions of the catalog (no I/O): the server decides which one to answer with.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from html import escape
from xml.sax.saxutils import escape as xml_escape

from cumpair.demo.catalog import Catalog, Category, DemoOffer

PAGE_SIZE = 12
SCHEMA = "https://schema.org/"
SHOP_NAMES = {
    "northwind": "Northwind Supply",
    "bluepeak": "Blue Peak Outfitters",
    "cornerstore": "Cornerstore Handel",
    "nebula": "Nebula",
}


class PageNotFound(LookupError):
    """The request names no page of this shop (unknown category, page or item)."""


def _page_count(n_items: int) -> int:
    return max(1, math.ceil(n_items / PAGE_SIZE))


def page_slice(items: list, page: int) -> tuple[list, int]:
    """Items on 1-based `page` and the number of pages; PageNotFound beyond the last."""
    pages = _page_count(len(items))
    if page < 1 or page > pages:
        raise PageNotFound(f"page {page} of {pages}")
    return items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], pages


def _document(shop: str, title: str, body: str, head: str = "") -> str:
    # Every page links into /private/: robots.txt disallows it, so a fetch of it is a bug.
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>{head}'
        f'</head>\n<body>\n<header><a href="/">{escape(SHOP_NAMES[shop])}</a></header>\n'
        f"<main>\n{body}\n</main>\n"
        '<footer><a href="/private/account">My account</a></footer>\n</body></html>\n'
    )


def category_url(shop: str, slug: str, page: int = 1) -> str:
    """Path of page `page` of category `slug` at `shop`."""
    if shop == "northwind":
        return f"/category/{slug}?page={page}"
    if shop == "bluepeak":
        return f"/c/{slug}/{page}"
    if shop == "cornerstore":
        return f"/shop/{slug}?p={page}"
    return f"/shop/{slug}?page={page}"


def _nav(shop: str, categories: list[Category]) -> str:
    links = "".join(
        f'<li><a class="category" href="{escape(category_url(shop, c.slug))}">'
        f"{escape(c.title)}</a></li>"
        for c in categories
    )
    return f'<nav><ul class="categories">{links}</ul></nav>'


def home_page(catalog: Catalog, shop: str) -> str:
    body = f"<h1>{escape(SHOP_NAMES[shop])}</h1>\n{_nav(shop, catalog.categories(shop))}"
    if shop == "nebula":
        body += '\n<div id="app"></div>\n<script src="/static/app.js"></script>'
    return _document(shop, SHOP_NAMES[shop], body)


def _find_category(catalog: Catalog, shop: str, slug: str) -> Category:
    for category in catalog.categories(shop):
        if category.slug == slug:
            return category
    raise PageNotFound(f"no category {slug!r} at {shop}")


def _next_link(shop: str, slug: str, page: int, pages: int) -> str:
    if page >= pages:
        return ""
    return f'<a rel="next" href="{escape(category_url(shop, slug, page + 1))}">Next</a>'


def category_page(catalog: Catalog, shop: str, slug: str, page: int) -> str:
    """A server-rendered category listing (nebula: an empty shell filled by app.js)."""
    category = _find_category(catalog, shop, slug)
    offers, pages = page_slice(catalog.category_offers(shop, slug), page)
    title = f"{category.title} - page {page} - {SHOP_NAMES[shop]}"
    if shop == "nebula":
        body = (
            f'{_nav(shop, catalog.categories(shop))}\n<div id="app"></div>\n'
            '<script src="/static/app.js"></script>'
        )
        return _document(shop, title, body)
    if shop == "cornerstore":
        items = "\n".join(
            f'<div class="item"><h3><a href="{escape(o.url_path)}">{escape(o.title)}</a></h3>'
            f'<img src="{escape(o.image_path(o.photo_name))}" width="120" alt=""></div>'
            for o in offers
        )
    else:
        items = "\n".join(
            f'<li><a class="product-link" href="{escape(o.url_path)}">{escape(o.title)}</a></li>'
            for o in offers
        )
        items = f'<ul class="products">\n{items}\n</ul>'
    body = (
        f"<h1>{escape(category.title)}</h1>\n{items}\n"
        f'<div class="pager">Page {page} of {pages} {_next_link(shop, slug, page, pages)}</div>'
    )
    return _document(shop, title, body)


def _price_text(price: Decimal) -> str:
    return f"{price:.2f}"


_SYMBOLS = {"EUR": "€", "USD": "$"}


def _symbol(currency: str) -> str:
    return _SYMBOLS.get(currency, currency)


def _german_price(price: Decimal) -> str:
    english = f"{price:,.2f}"  # 1,299.00
    return english.replace(",", "_").replace(".", ",").replace("_", ".") + " €"


def northwind_product(offer: DemoOffer, base: str) -> str:
    """JSON-LD Product; visible HTML has no microdata. Defects corrupt exactly what they say."""
    product = offer.product
    offer_data: dict = {
        "@type": "Offer",
        "priceCurrency": offer.currency,
        "availability": SCHEMA + offer.availability,
        "url": base + offer.url_path,
    }
    if offer.condition is not None:
        offer_data["itemCondition"] = f"{SCHEMA}{offer.condition}Condition"
    shown = _symbol(offer.currency) + _price_text(offer.price)
    visible_price = f'<span class="price">{shown}</span>'
    if offer.defect == "missing_price":
        visible_price = ""
    elif offer.defect == "bad_price":
        offer_data["price"] = "call us"
        visible_price = '<span class="price">call us</span>'
    else:
        offer_data["price"] = _price_text(offer.price)
    data: dict = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": offer.title,
        "sku": offer.sku,
        "mpn": product.model,
        "brand": {"@type": "Brand", "name": product.brand},
        "description": offer.description,
        "image": [base + path for path in offer.image_paths],
        "category": product.category,
        "offers": offer_data,
    }
    if offer.gtin_printed is not None:
        data["gtin13"] = offer.gtin_printed
    ld = json.dumps(data, indent=2, ensure_ascii=False)
    if offer.defect == "broken_jsonld":
        ld = ld.replace('",\n', '"\n', 1)  # a missing comma: a syntax error, as CMSes produce
    ld = ld.replace("</", "<\\/")
    head = f'\n<script type="application/ld+json">\n{ld}\n</script>'
    images = "".join(f'<img src="{escape(p)}" alt="">' for p in offer.image_paths)
    body = (
        f'<h1 class="product-title">{escape(offer.title)}</h1>\n{visible_price}\n'
        f'<p class="availability">{escape(offer.availability)}</p>\n'
        f'<div class="gallery">{images}</div>\n'
        f'<p class="description">{escape(offer.description)}</p>'
    )
    return _document("northwind", offer.title, body, head)


def bluepeak_product(offer: DemoOffer, base: str) -> str:
    """schema.org microdata only (no JSON-LD)."""
    product = offer.product
    if offer.defect == "missing_price":
        price = ""
    elif offer.defect == "bad_price":
        price = '<meta itemprop="price" content="call us"><span>call us</span>'
    else:
        price = (
            f'<meta itemprop="price" content="{_price_text(offer.price)}">'
            f"<span>{_symbol(offer.currency)} {_price_text(offer.price)}</span>"
        )
    if offer.condition is not None:
        price += f'<link itemprop="itemCondition" href="{SCHEMA}{offer.condition}Condition">'
    gtin = ""
    if offer.gtin_printed is not None:
        prop = "gtin12" if len(offer.gtin_printed) == 12 else "gtin13"
        gtin = f'<p>GTIN: <span itemprop="{prop}">{escape(offer.gtin_printed)}</span></p>'
    images = "".join(
        f'<img itemprop="image" src="{escape(base + p)}" alt="">' for p in offer.image_paths
    )
    body = f"""<div itemscope itemtype="https://schema.org/Product">
<h1 itemprop="name">{escape(offer.title)}</h1>
<div itemprop="brand" itemscope itemtype="https://schema.org/Brand">Brand: <span itemprop="name">{escape(product.brand)}</span></div>
<p>SKU: <span itemprop="sku">{escape(offer.sku)}</span></p>
<p>MPN: <span itemprop="mpn">{escape(product.model)}</span></p>
{gtin}
<div class="images">{images}</div>
<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
{price}<meta itemprop="priceCurrency" content="{offer.currency}">
<link itemprop="availability" href="{SCHEMA}{offer.availability}">
</div>
<p itemprop="description">{escape(offer.description)}</p>
</div>"""  # noqa: E501
    return _document("bluepeak", offer.title, body)


_STOCK_TEXT = {"InStock": "In stock", "OutOfStock": "Out of stock", "PreOrder": "Pre-order"}


def cornerstore_product(offer: DemoOffer) -> str:
    """Plain HTML: a crawler needs CSS selectors (no JSON-LD, microdata or og: tags)."""
    product = offer.product
    if offer.defect == "missing_price":
        price = ""
    elif offer.defect == "bad_price":
        price = '<span class="prod-price">call us</span>'
    else:
        price = f'<span class="prod-price">{_german_price(offer.price)}</span>'
    rows = [("Brand", product.brand), ("Model", product.model), ("SKU", offer.sku)]
    if offer.gtin_printed is not None:
        rows.append(("EAN", offer.gtin_printed))
    table = "".join(f"<tr><th>{k}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    images = "".join(f'<img class="gallery" src="{escape(p)}" alt="">' for p in offer.image_paths)
    body = (
        f'<h1 class="prod-title">{escape(offer.title)}</h1>\n{price}\n'
        f'<div class="stock">{_STOCK_TEXT[offer.availability]}</div>\n'
        f'<table class="specs">{table}</table>\n'
        f'<div class="desc">{escape(offer.description)}</div>\n'
        f"<div>{images}</div>"
    )
    return _document("cornerstore", offer.title, body)


def nebula_item_shell(catalog: Catalog) -> str:
    """The product page as served: no product data until app.js runs."""
    body = (
        f'{_nav("nebula", catalog.categories("nebula"))}\n<div id="app"></div>\n'
        '<script src="/static/app.js"></script>'
    )
    return _document("nebula", "Nebula", body)


def nebula_catalog_json(catalog: Catalog, slug: str, page: int) -> dict:
    category = _find_category(catalog, "nebula", slug)
    offers, pages = page_slice(catalog.category_offers("nebula", slug), page)
    return {
        "category": {"slug": category.slug, "title": category.title},
        "page": page,
        "pages": pages,
        "items": [
            {
                "id": o.item_id,
                "title": o.title,
                "url": o.url_path,
                "price": _price_text(o.price),
                "image": o.image_path(o.photo_name),
            }
            for o in offers
        ],
        "next": category_url("nebula", slug, page + 1) if page < pages else None,
    }


def nebula_item_json(offer: DemoOffer, base: str) -> dict:
    return {
        "id": offer.item_id,
        "name": offer.title,
        "price": _price_text(offer.price),
        "currency": offer.currency,
        "brand": offer.product.brand,
        "mpn": offer.product.model,
        "sku": offer.sku,
        "gtin": offer.gtin_printed,
        "availability": offer.availability,
        "description": offer.description,
        "category": offer.product.category,
        "images": [base + path for path in offer.image_paths],
    }


def robots_txt(shop: str, base: str) -> str:
    text = "User-agent: *\nDisallow: /private/\n"
    if shop == "bluepeak":
        text += f"\nSitemap: {base}/sitemap.xml\n"
    return text


def sitemap_xml(catalog: Catalog, shop: str, base: str) -> str:
    urls = "".join(
        f"  <url><loc>{xml_escape(base + o.url_path)}</loc></url>\n"
        for o in catalog.offers_by_shop(shop)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}</urlset>\n'
    )


def private_page(shop: str) -> str:
    return _document(shop, "My account", "<h1>My account</h1><p>Private area.</p>")


def challenge_page(shop: str, token: str, next_path: str, wrong: bool = False) -> str:
    """The 403 challenge: answer the captcha to pass (see `captcha.py`)."""
    notice = '<p class="error">Wrong answer, try again.</p>' if wrong else ""
    body = f"""<h1>Security check</h1>{notice}
<form id="challenge" method="post" action="/challenge">
<img class="captcha" src="/challenge/{token}.png" alt="captcha">
<input type="hidden" name="token" value="{token}">
<input type="hidden" name="next" value="{escape(next_path)}">
<input name="answer" autocomplete="off"> <button type="submit">Continue</button>
</form>"""
    return _document(shop, "Security check", body)
