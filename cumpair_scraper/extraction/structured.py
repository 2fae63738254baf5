"""Product candidates from a page's structured data: one per syntax that describes the product.

JSON-LD (block by block, see `jsonld.py`), microdata and RDFa give schema.org Products (or a
ProductGroup); OpenGraph gives `og:`/`product:` tags (price, currency, availability, brand).
Each syntax is read on its own, so a failure in one is a reported problem, never a lost page.
The merge of the candidates lives in `merge.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import extruct
from lxml.etree import _Element

from cumpair_scraper.extraction.condition import stated_condition
from cumpair_scraper.extraction.jsonld import jsonld_nodes
from cumpair_scraper.extraction.offers import combine, is_type, offer_nodes, read_offer
from cumpair_scraper.extraction.values import (
    GTIN_KEYS,
    availability,
    checked_gtin,
    currency,
    parse_price,
    text,
)

SYNTAXES = ("json-ld", "microdata", "rdfa", "opengraph")
_PRODUCT_TYPES = ("Product", "ProductGroup")
_SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")


@dataclass
class Candidate:
    """What one source says about the product: item field name -> value (None = not given)."""

    source: str
    fields: dict[str, Any] = field(default_factory=dict)


def structured_candidates(tree: _Element, url: str, problems: list[str]) -> list[Candidate]:
    """One candidate per syntax that carries the product, in SYNTAXES order."""
    candidates = []
    for syntax in SYNTAXES:
        try:
            nodes = _nodes(syntax, tree, url, problems)
        except Exception as exc:  # extruct surfaces lxml/rdflib errors as they come
            problems.append(f"{syntax}: {type(exc).__name__}: {exc}")
            continue
        if syntax == "opengraph":
            fields = _opengraph_fields(nodes, url, problems)
        else:
            walked = list(_walk(nodes))
            product = _main_product([n for n in walked if _is_product(n)], url)
            if product is not None and syntax == "json-ld":
                product = _resolved(product, {n["@id"]: n for n in walked if _has_id(n)})
            fields = product_fields(product, url, problems) if product else {}
        fields = {k: v for k, v in fields.items() if v not in (None, [], "")}
        if fields:
            candidates.append(Candidate(syntax, fields))
    return candidates


def _nodes(syntax: str, tree: _Element, url: str, problems: list[str]) -> list[dict[str, Any]]:
    if syntax == "json-ld":
        return jsonld_nodes(tree, problems)
    if syntax == "rdfa" and not tree.xpath("//*[@typeof]"):
        return []  # an RDFa Product needs `typeof`; pyRdfa costs seconds on a large page
    data = extruct.extract(tree, base_url=url, syntaxes=[syntax], uniform=True)[syntax]
    return _rdfa_products(data) if syntax == "rdfa" else data


def _walk(nodes: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Depth-first over nodes, entering @graph containers and a page's mainEntity."""
    for node in nodes:
        if isinstance(node, dict):
            yield node
            for key in ("@graph", "mainEntity"):
                inner = node.get(key)
                if isinstance(inner, list | dict):
                    yield from _walk(inner if isinstance(inner, list) else [inner])
        elif isinstance(node, list):
            yield from _walk(node)


def _main_product(products: list[dict[str, Any]], url: str) -> dict[str, Any] | None:
    """The page's own product: the one whose `url` is the page's, else the first (pages list
    related products after their own)."""
    page = _without_query(url)
    for product in products:
        own = text(product.get("url"))
        if own and _without_query(urljoin(url, own)) == page:
            return product
    return products[0] if products else None


def _without_query(url: str) -> str:
    return url.split("#", 1)[0].split("?", 1)[0].rstrip("/")


def _has_id(node: dict[str, Any]) -> bool:
    return isinstance(node.get("@id"), str) and len(node) > 1


def _resolved(node: Any, by_id: dict[str, dict[str, Any]], depth: int = 0) -> Any:
    """The node with references to other nodes of the page (`{"@id": "#offer"}`, as @graph
    markup writes offers, brands and variants) replaced by those nodes, three levels deep."""
    if isinstance(node, list):
        return [_resolved(n, by_id, depth) for n in node]
    if not isinstance(node, dict) or depth > 3:
        return node
    if set(node) == {"@id"} and node["@id"] in by_id:
        node = by_id[node["@id"]]
    return {k: _resolved(v, by_id, depth + 1) for k, v in node.items()}


def _is_product(node: dict[str, Any]) -> bool:
    return any(is_type(node, name) for name in _PRODUCT_TYPES)


def product_fields(product: dict[str, Any], url: str, problems: list[str]) -> dict[str, Any]:
    """Item fields from one schema.org Product or ProductGroup and its offers."""
    fields: dict[str, Any] = {
        "title": text(product.get("name")),
        "description": text(product.get("description")),
        "brand": text(product.get("brand")) or text(product.get("manufacturer")),
        "model": text(product.get("mpn")) or text(product.get("model")),
        "sku": text(product.get("sku")) or text(product.get("productGroupID")),
        "category": text(product.get("category")),
        "image_urls": _image_urls(product.get("image"), url),
    }
    raw_gtin = next((text(product[k]) for k in GTIN_KEYS if text(product.get(k))), None)
    fields["gtin"] = checked_gtin(raw_gtin, problems) if raw_gtin else None
    readings = [read_offer(offer, owner, problems) for offer, owner in offer_nodes(product)]
    offer_fields = combine(readings, url)
    # The product's own identifiers win; an offer's fill what the product leaves out.
    for name, item_name in (("sku", "sku"), ("gtin", "gtin"), ("mpn", "model")):
        value = offer_fields.pop(name, None)
        if fields.get(item_name) is None:
            fields[item_name] = value
    fields.update(offer_fields)
    if fields.get("condition") is None:  # Product.itemCondition, where the offers say none
        fields["condition"] = stated_condition(text(product.get("itemCondition")))
    return fields


def _image_urls(value: Any, base_url: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    urls = []
    for entry in values:
        url = entry.get("url") or entry.get("contentUrl") if isinstance(entry, dict) else entry
        if isinstance(url, str) and url.strip():
            urls.append(urljoin(base_url, url.strip()))
    return list(dict.fromkeys(urls))


def _opengraph_fields(nodes: list[dict[str, Any]], url: str, problems: list[str]) -> dict[str, Any]:
    """OpenGraph's product tags (`og:` and Facebook's `product:` namespace) as item fields."""
    tags: dict[str, Any] = {}
    for node in nodes:
        for key, value in node.items():
            tags.setdefault(key, value)
    if not tags:
        return {}

    def tag(*names: str) -> str | None:
        return next((text(tags[n]) for n in names if text(tags.get(n))), None)

    fields: dict[str, Any] = {
        "title": _without_site_name(tag("og:title"), tag("og:site_name")),
        "description": tag("og:description"),
        "image_urls": _image_urls(tags.get("og:image"), url),
        "brand": tag("product:brand", "og:brand"),
        "sku": tag("product:retailer_item_id", "og:retailer_item_id"),
        "availability": availability(tag("product:availability", "og:availability")),
        "condition": stated_condition(tag("product:condition", "og:condition")),
    }
    amount = tag("product:price:amount", "og:price:amount")
    if amount:
        fields["price"], symbol = parse_price(amount, problems)
        fields["currency"] = currency(tag("product:price:currency", "og:price:currency") or symbol)
    else:
        fields["currency"] = currency(tag("product:price:currency", "og:price:currency"))
    raw_gtin = tag("product:gtin", "product:ean", "product:upc", "og:upc", "og:ean")
    fields["gtin"] = checked_gtin(raw_gtin, problems) if raw_gtin else None
    return fields


def _without_site_name(title: str | None, site: str | None) -> str | None:
    """A share title without the shop's name around it (`Lamp | Shop`, `Shop - Lamp`)."""
    if not title or not site:
        return title
    for separator in (" | ", " - ", " \u2013 ", " \u2014 ", " \u00b7 "):
        if title.endswith(separator + site):
            return title[: -len(separator + site)].strip() or title
        if title.startswith(site + separator):
            return title[len(site + separator) :].strip() or title
    return title


def _rdfa_products(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RDFa's expanded JSON-LD recast as compact schema.org nodes (`name`, `offers`, ...),
    with references to other nodes of the page resolved one level deep."""
    by_id = {n.get("@id"): n for n in nodes if isinstance(n, dict) and n.get("@id")}

    def compact(node: dict[str, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {"@type": node.get("@type", [])}
        for key, values in node.items():
            short = next((key[len(p) :] for p in _SCHEMA_PREFIXES if key.startswith(p)), None)
            if short is None:
                continue
            converted = []
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, dict) and "@value" in value:
                    converted.append(value["@value"])
                elif isinstance(value, dict) and value.get("@id") in by_id and depth < 2:
                    converted.append(compact(by_id[value["@id"]], depth + 1))
                elif isinstance(value, dict) and "@id" in value:
                    converted.append(value["@id"])
            if converted:
                out[short] = converted if len(converted) > 1 else converted[0]
        return out

    return [compact(n, 0) for n in nodes if isinstance(n, dict) and _is_product(n)]
