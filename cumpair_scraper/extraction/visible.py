"""The generic fallback for pages without structured data: fields read off the visible page.

Only general patterns of shop markup are used: the product heading (`h1`, an element named
product-title), price markup (elements whose class or id names a price, `data-price`, the
screen-reader text shops put inside split-up prices, stray `itemprop` tags), availability and
brand/byline elements or a details-table row, and the main product image. Hidden elements are
skipped. A price is taken only with its currency, next to the heading or the buy button (both
must agree), and never from a strikethrough, unit, instalment, shipping or savings context: a
wrong price is worse than none, so anything ambiguous gives None.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

from lxml.html import HtmlElement
from price_parser import Price

from cumpair_scraper.extraction.values import availability, currency

_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# Words in a class, id or attribute name that mark a price which is not the one to pay.
_NOT_THE_PRICE = frozenset({
    "strike", "strikethrough", "through", "old", "was", "before", "original", "regular", "list",
    "rrp", "uvp", "msrp", "basis", "unit", "per", "instalment", "installment", "monthly", "month",
    "rate", "saving", "savings", "save", "shipping", "delivery", "coupon", "discount",
    "reference", "compare", "crossed",
})  # fmt: skip
# The same, written in the text right next to a price (several languages).
_NOT_THE_PRICE_TEXT = re.compile(
    r"\b(uvp|statt|was|list price|rrp|prix conseillé|au lieu de|pro (stück|kg|liter)|"
    r"monatlich|mtl|per month|par mois|versand|shipping|livraison|ersparnis|économisez|"
    r"you save|sie sparen)\b"
    r"|/\s*(\d+\s*)?(kg|g|l|ml|m|stk|stück|month|monat|mois)\b",
    re.IGNORECASE,
)
_SCREEN_READER = frozenset({"offscreen", "sr", "only", "visually", "hidden", "screen", "reader"})
_STOCK_PHRASES = (  # out-of-stock first: "nicht verfügbar" contains "verfügbar"
    ("OutOfStock", r"out of stock|sold out|ausverkauft|nicht (mehr )?(verfügbar|lieferbar)|"
     r"currently unavailable|unavailable|épuisé|rupture de stock|indisponible|agotado"),
    ("PreOrder", r"pre-?order|vorbestell|précommande"),
    ("InStock", r"in stock|auf lager|en stock|sofort lieferbar|lieferbar|verfügbar|disponible|"
     r"available|instock"),
)  # fmt: skip
_BRAND_LABEL = re.compile(r"^(?:brand|marke|marque|marca|hersteller)\s*:?\s+(.+)$", re.I)
# A brand-store link names the shop's store, which is the brand only when the title names it.
_STORE_LINKS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^visit the (.+?) store$",
        r"^besuche den (.+?)-store$",
        r"^visiter la boutique (.+)$",
    )
)
_NOT_PRODUCT_IMAGE = frozenset({"logo", "icon", "sprite", "avatar", "badge", "flag"})
_BRAND_LABELS = frozenset({"brand", "marke", "marque", "marca", "merk"})
_IMAGE_WORDS = frozenset({"main", "landing", "hero", "primary", "gallery", "zoom"})
_BUY_WORDS = ({"add", "cart"}, {"add", "basket"}, {"buy", "now"}, {"addtocart"})
_BUY_TEXT = re.compile(
    r"^(add to (cart|basket|bag)|in den (warenkorb|einkaufswagen)|ajouter au panier|buy now|"
    r"jetzt kaufen|acheter( maintenant)?|in die einkaufstasche)$",
    re.IGNORECASE,
)
_INVISIBLE = frozenset({"script", "style", "noscript", "template", "head"})
_HIDDEN_CLASS_WORDS = frozenset({"hidden", "hide", "invisible"})
_MAX_PRICE_TEXT = 40
_MAX_CONTEXT_TEXT = 80
_CONTEXT = 30  # characters either side of a price read as its label


def words(element: HtmlElement) -> set[str]:
    """Lower-case words of an element's class, id and attribute names (`data-a-strike`)."""
    found: set[str] = set()
    for name, value in element.attrib.items():
        found.update(w.lower() for w in _WORD.findall(name))
        if name in ("class", "id"):
            found.update(w.lower() for w in _WORD.findall(value))
    return found


def _own_text(element: HtmlElement) -> str:
    """The element's visible text (scripts and styles left out), whitespace collapsed."""
    parts = element.xpath(".//text()[not(ancestor::script) and not(ancestor::style)]")
    return " ".join(" ".join(parts).split())


def shown_elements(root: HtmlElement) -> list[HtmlElement]:
    """The page's elements in document order, without scripts, styles, the head and anything
    the markup hides (a `hidden` attribute, `display: none`, a hidden/invisible class): shops
    keep templates of other variants' prices there."""
    shown: list[HtmlElement] = []
    stack = [root]
    while stack:
        element = stack.pop()
        if not isinstance(element.tag, str) or element.tag in _INVISIBLE or _hidden(element):
            continue
        shown.append(element)
        stack.extend(reversed(element))
    return shown


def _hidden(element: HtmlElement) -> bool:
    if "hidden" in element.attrib:
        return True
    style = element.get("style", "").replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    classes = element.get("class", "")
    return bool(classes) and (
        bool(_HIDDEN_CLASS_WORDS & {w.lower() for w in _WORD.findall(classes)})
        or "d-none" in classes
    )


def visible_fields(root: HtmlElement, url: str) -> dict[str, Any]:
    """Title, price, currency, availability, brand and images from the visible page."""
    elements = shown_elements(root)
    heading = _heading(elements)
    fields: dict[str, Any] = {
        "title": _own_text(heading) or None if heading is not None else None,
        "availability": _availability(elements),
        "brand": _brand(elements, _own_text(heading) if heading is not None else ""),
        "image_urls": _images(root, url),
    }
    price = _price(elements, heading) or _itemprop_price(root)
    if price is not None:
        fields["price"], fields["currency"] = price
    fields["availability"] = fields["availability"] or availability(_itemprop(root, "availability"))
    fields["brand"] = fields["brand"] or _itemprop(root, "brand")
    return {k: v for k, v in fields.items() if v not in (None, [], "")}


def _itemprop(root: HtmlElement, name: str) -> str | None:
    """The one value a page gives for a schema.org property outside any itemscope (stray
    `<meta itemprop="price" content="...">` tags); None when absent or not unique."""
    values = {
        " ".join((e.get("content") or e.get("href") or e.text_content() or "").split())
        for e in root.xpath(f'//*[@itemprop="{name}" and not(ancestor-or-self::*[@itemscope])]')
    } - {""}
    return values.pop() if len(values) == 1 else None


def _itemprop_price(root: HtmlElement) -> tuple[Decimal, str] | None:
    raw = _itemprop(root, "price")
    if raw is None:
        return None
    price = Price.fromstring(raw)
    code = currency(_itemprop(root, "priceCurrency") or price.currency)
    return (price.amount, code) if price.amount is not None and price.amount > 0 and code else None


def struck_prices(root: HtmlElement) -> set[Decimal]:
    """Amounts the page shows struck through (`<s>`, `<del>`, strike-through markup)."""
    amounts = set()
    for element in shown_elements(root):
        if element.tag in ("s", "del", "strike") or words(element) & {"strike", "strikethrough"}:
            text = _own_text(element)
            if len(text) <= _MAX_PRICE_TEXT:
                price = Price.fromstring(text)
                if price.amount is not None and price.currency:
                    amounts.add(price.amount)
    return amounts


def _heading(elements: list[HtmlElement]) -> HtmlElement | None:
    """The product's name: the `h1` holding an element named product-title (that element),
    else the first `h1` with text."""
    headings = [e for e in elements if e.tag == "h1" and _own_text(e)]
    for h1 in headings:
        for inner in h1.iter():
            named = isinstance(inner.tag, str) and {"product", "title"} <= words(inner)
            if named and _own_text(inner):
                return inner
    return headings[0] if headings else None


def _is_price_markup(element: HtmlElement) -> bool:
    return "price" in words(element) or "data-price" in element.attrib


def _price(elements: list[HtmlElement], heading: HtmlElement | None) -> tuple[Decimal, str] | None:
    """The price to pay: the last one before the buy button, and the first one after the
    product's heading; when the heading comes first the two must agree (else None: a wrong
    price is worse than none). A buy box above the heading gives its own price."""
    position = {e: i for i, e in enumerate(elements)}
    prices = list(_prices(elements))
    start = position[heading] if heading is not None else None
    button = next((position[e] for e in elements if _is_buy_button(e)), None)
    before_button = next((p for i, p in reversed(prices) if button and i < button), None)
    after_heading = next((p for i, p in prices if start is not None and i > start), None)
    if start is None or (button is not None and button < start):
        return before_button or after_heading  # a buy box placed above the heading
    if before_button and after_heading and before_button != after_heading:
        return None
    return after_heading


def _prices(elements: list[HtmlElement]) -> Iterator[tuple[int, tuple[Decimal, str]]]:
    """(position, (amount, currency)) of every price in price markup that is not marked, by
    its markup or the text right beside it, as some other price (list, unit, shipping...)."""
    for index, element in enumerate(elements):
        if not _is_price_markup(element) or _inside_price_markup(element):
            continue
        for atom in _atoms(element):
            if _not_the_price(atom, element):
                continue
            raw = _own_text(atom) or atom.get("data-price", "")
            if not raw or len(raw) > _MAX_PRICE_TEXT:
                continue
            price = Price.fromstring(raw)
            code = currency(price.currency)
            if price.amount is not None and price.amount > 0 and code:
                yield index, (price.amount, code)
                break


def _is_buy_button(element: HtmlElement) -> bool:
    if element.tag not in ("button", "input", "a") or element.get("type") == "hidden":
        return False
    found = words(element)
    if any(needed <= found for needed in _BUY_WORDS):
        return True
    label = _own_text(element) or element.get("value", "") or element.get("aria-label", "")
    return bool(_BUY_TEXT.match(label.strip()))


def _inside_price_markup(element: HtmlElement) -> bool:
    return any(_is_price_markup(a) for a in element.iterancestors())


def _atoms(element: HtmlElement) -> Iterator[HtmlElement]:
    """The smallest parts of a price block that hold one whole price: its screen-reader
    texts when it has them (split-up prices), else its innermost price elements."""
    readers = [e for e in element.iter() if isinstance(e.tag, str) and words(e) >= {"offscreen"}]
    readers = readers or [
        e for e in element.iter() if isinstance(e.tag, str) and len(words(e) & _SCREEN_READER) >= 2
    ]
    if readers:
        yield from readers
        return
    inner = [e for e in element.iterdescendants() if isinstance(e.tag, str) and _is_price_markup(e)]
    yield from inner or [element]


def _not_the_price(atom: HtmlElement, block: HtmlElement) -> bool:
    """Marked as another price by its markup (itself, what it holds, or its block and the two
    elements around that) or by the words beside it."""
    chain = [atom, *atom.iterancestors()]
    stop = chain.index(block) if block in chain else len(chain) - 1
    inside = [e for e in atom.iterdescendants() if isinstance(e.tag, str)]
    for element in chain[: stop + 3] + inside:
        if element.tag in ("s", "del", "strike") or words(element) & _NOT_THE_PRICE:
            return True
    return bool(_NOT_THE_PRICE_TEXT.search(_beside(atom)))


def _beside(atom: HtmlElement) -> str:
    """The price's text with the labels right before and after it (from its own siblings and
    its parent's): `UVP 45,99 €`, `10,00 € / 1 Stück`, `1,17 € mtl.`. A neighbour holding a
    number is another price or figure, not a label, and is left out."""
    before, after = "", ""
    for level in (atom, atom.getparent()):
        if level is None:
            break
        previous, following, parent = level.getprevious(), level.getnext(), level.getparent()
        if previous is not None:
            before = _label(_own_text(previous)) + " " + (previous.tail or "") + " " + before
        elif parent is not None:
            before = (parent.text or "") + " " + before
        after += " " + (level.tail or "")
        if following is not None:
            after += " " + _label(_own_text(following))
    text = " ".join(before.split())[-_CONTEXT:] + " " + _own_text(atom) + " "
    return text + " ".join(after.split())[:_CONTEXT]


def _label(text: str) -> str:
    return "" if any(c.isdigit() for c in text) else text


def _availability(elements: list[HtmlElement]) -> str | None:
    """The first availability/stock element whose text says in stock, out of stock, ..."""
    for element in elements:
        if not words(element) & {"availability", "stock", "instock"}:
            continue
        text = _own_text(element).lower()
        if not text or len(text) > _MAX_CONTEXT_TEXT:
            continue
        for name, pattern in _STOCK_PHRASES:
            if re.search(pattern, text):
                return name
    return None


def _brand(elements: list[HtmlElement], title: str) -> str | None:
    """The brand from a brand/byline element written as `Brand: X` or a brand-store link (when
    the title names that store), else from a details table's `Brand | X` row."""
    for element in elements:
        if not words(element) & {"brand", "byline", "manufacturer"}:
            continue
        text = _own_text(element)
        if not text or len(text) > _MAX_CONTEXT_TEXT:
            continue
        match = _BRAND_LABEL.match(text)
        if match:
            return match.group(1).strip()
        for pattern in _STORE_LINKS:
            match = pattern.match(text)
            if match and match.group(1).strip().casefold() in title.casefold():
                return match.group(1).strip()
    for element in elements:
        if element.tag == "tr":
            cells = [c for c in element if isinstance(c.tag, str) and c.tag in ("th", "td")]
            label, value = (cells[0], cells[1]) if len(cells) == 2 else (None, None)
        elif element.tag == "dt":
            label, value = element, element.getnext()
            value = value if value is not None and value.tag == "dd" else None
        else:
            continue
        labelled = label is not None and value is not None
        if labelled and _own_text(label).rstrip(" :").casefold() in _BRAND_LABELS:
            text = _own_text(value)
            if text and len(text) <= _MAX_CONTEXT_TEXT:
                return text
    return None


def _images(root: HtmlElement, url: str) -> list[str]:
    """The main product image: the first `img` named (or inside a block named) main, landing,
    hero, primary, gallery or zoom that is not a logo or an icon; its large version if given."""
    for element in root.iter("img"):
        named = words(element) | _container_words(element)
        if not named & _IMAGE_WORDS or named & _NOT_PRODUCT_IMAGE:
            continue
        for attribute in ("data-old-hires", "data-zoom-image", "data-src", "src"):
            src = (element.get(attribute) or "").strip()
            if src and not src.startswith("data:"):
                return [urljoin(url, src)]
    return []


def _container_words(element: HtmlElement) -> set[str]:
    found: set[str] = set()
    for ancestor, _ in zip(element.iterancestors(), range(3), strict=False):
        found |= words(ancestor)
    return found
