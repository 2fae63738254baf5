"""Read offer feeds: Scrapy JSON lines / CSV of the project's items, Google Merchant XML and TSV.

Each reader yields one `FeedRow` per offer (its fields named as `ProductItem`'s, values still as
the file wrote them) or a `FeedProblem` for an entry it cannot read, both with the line number
where the entry starts, so one bad line is reported and the rest still read. Parsing is the
standard library's (json, csv) and lxml's for XML, with entities left unresolved and no network
(a feed comes from outside). Values are checked and converted later, in `offers`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

Format = Literal["jsonl", "csv", "tsv", "xml"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "tsv", "xml")

_EXTENSIONS: dict[str, Format] = {
    ".jl": "jsonl",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xml": "xml",
    ".rss": "xml",
    ".atom": "xml",
}
# Merchant Center attribute -> ProductItem field ("link" marks a Merchant feed). Merchant's
# own `id` is the shop's item id: the item's `sku`.
MERCHANT_FIELDS: dict[str, str] = {
    "id": "sku",
    "title": "title",
    "description": "description",
    "link": "url",
    "price": "price",
    "availability": "availability",
    "brand": "brand",
    "gtin": "gtin",
    "mpn": "model",
    "product_type": "category",
    "google_product_category": "category",
}
_MERCHANT_IMAGES = ("image_link", "additional_image_link")
G_NS = "http://base.google.com/ns/1.0"
_ATOM_NS = "http://www.w3.org/2005/Atom"


class FeedError(ValueError):
    """A feed that cannot be read at all (unknown format, unreadable file)."""


@dataclass(frozen=True)
class FeedRow:
    """One offer as the feed states it: `ProductItem` field names, the file's values."""

    line: int
    fields: dict[str, Any]


@dataclass(frozen=True)
class FeedProblem:
    """An entry that could not be read; `reason` is a short counter name (``malformed``)."""

    line: int
    reason: str
    message: str


def detect_format(path: str | os.PathLike[str], override: str | None = None) -> Format:
    """The feed's format: `override` if given, else the extension (``.gz`` looked through),
    else the first character of the content (``{`` JSON lines, ``<`` XML, a tab in the first
    line TSV, otherwise CSV). Raises `FeedError` for a file that cannot be read."""
    if override is not None and override not in FORMATS:
        raise FeedError(f"unknown feed format {override!r}; expected one of {FORMATS}")
    try:  # an unreadable file fails here, before any work
        with _open_text(path) as handle:
            head = handle.read(4096)
    except (OSError, EOFError) as exc:  # includes a damaged gzip stream
        raise FeedError(f"{path}: cannot read the feed: {exc}") from exc
    name = Path(path).name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    if override is not None:
        return override  # type: ignore[return-value]
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    text = head.lstrip("\ufeff \t\r\n")
    if not text:
        raise FeedError(f"{path}: the feed is empty")
    if text[0] == "{":
        return "jsonl"
    if text[0] == "<":
        return "xml"
    return "tsv" if "\t" in text.splitlines()[0] else "csv"


def read_feed(path: str | os.PathLike[str], fmt: Format) -> Iterator[FeedRow | FeedProblem]:
    """Every entry of the feed at `path` (plain or gzip-compressed), in file order. A file that
    stops being readable (a truncated or damaged gzip stream) ends with an ``unreadable``
    problem; the entries before it stand."""
    try:
        if fmt == "xml":
            yield from _read_xml(path)
            return
        with _open_text(path) as handle:
            if fmt == "jsonl":
                yield from _read_jsonl(handle)
            else:
                yield from _read_delimited(handle, "\t" if fmt == "tsv" else ",")
    except (OSError, EOFError) as exc:
        yield FeedProblem(0, "unreadable", f"reading stopped, rest of file unread: {exc}")


def _is_gzip(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    try:
        return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")
    except OSError as exc:
        raise FeedError(f"{path}: cannot read the feed: {exc}") from exc


def _open_text(path: str | os.PathLike[str]) -> IO[str]:
    # utf-8-sig: spreadsheet exports start with a byte-order mark; a stray byte is shown as
    # U+FFFD rather than failing the whole file.
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", errors="replace", newline="")


def _read_jsonl(handle: IO[str]) -> Iterator[FeedRow | FeedProblem]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            # Decimal, not float: a price written 19.99 stays 19.99 (Scrapy writes Decimals as
            # strings, other tools as numbers).
            value = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            yield FeedProblem(number, "malformed", f"not JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield FeedProblem(number, "malformed", f"a JSON {type(value).__name__}, not an object")
            continue
        yield FeedRow(number, value)


def _read_delimited(handle: IO[str], delimiter: str) -> Iterator[FeedRow | FeedProblem]:
    """CSV or TSV with a header row: the project's item columns, or Merchant's (``link``)."""
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield FeedProblem(reader.line_num, "malformed", f"unreadable header: {exc}")
        return
    names = [_attribute(name) for name in header]
    merchant = "link" in names and "url" not in names
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote at end of file
            yield FeedProblem(start, "malformed", str(exc))
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield FeedProblem(
                line, "malformed", f"{len(row)} columns where the header has {len(names)}"
            )
            continue
        values = dict(zip(names, row, strict=True))
        yield FeedRow(line, _merchant_fields(values) if merchant else _item_fields(values))


def _attribute(name: str) -> str:
    """A column name as an attribute: ``g:price`` / ``Price `` -> ``price``."""
    name = name.strip().lower()
    return name.removeprefix("g:")


def _item_fields(values: dict[str, str]) -> dict[str, Any]:
    """A CSV row of the project's items (Scrapy's CSV export joins lists with commas)."""
    fields: dict[str, Any] = {k: v for k, v in values.items() if v.strip()}
    if "image_urls" in fields:
        fields["image_urls"] = _split_list(fields["image_urls"])
    return fields


def _merchant_fields(values: dict[str, str]) -> dict[str, Any]:
    """Merchant attributes renamed to item fields; image links gathered into `image_urls`."""
    fields: dict[str, Any] = {}
    for attribute, value in values.items():
        target = MERCHANT_FIELDS.get(attribute)
        if target and value.strip() and target not in fields:
            fields[target] = value
    images: list[str] = []
    for attribute in _MERCHANT_IMAGES:
        images += _split_list(values.get(attribute) or "")
    if images:
        fields["image_urls"] = images
    return fields


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _read_xml(path: str | os.PathLike[str]) -> Iterator[FeedRow | FeedProblem]:
    """A Merchant Center feed: RSS 2.0 ``<item>`` or Atom ``<entry>`` elements, ``g:`` fields.

    A syntax error ends the file (after it, XML is not reliably readable): it is reported with
    its line and the items before it are kept.
    """
    from lxml import etree

    tags = ("item", f"{{{_ATOM_NS}}}entry")
    with _open_binary(path) as handle:
        parser = etree.iterparse(
            handle,
            events=("end",),
            tag=tags,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        )
        try:
            for _, element in parser:
                yield FeedRow(element.sourceline or 0, _xml_fields(element))
                # Free what was read: the item, and the emptied items before it (long feeds).
                element.clear(keep_tail=False)
                parent = element.getparent()
                while parent is not None and element.getprevious() is not None:
                    del parent[0]
        except etree.XMLSyntaxError as exc:
            line = exc.lineno or 0
            yield FeedProblem(line, "malformed", f"XML syntax error, rest of file unread: {exc}")


def _xml_fields(element: Any) -> dict[str, Any]:
    """One item's Merchant attributes (``g:`` namespace, or RSS/Atom's own title/link)."""
    values: dict[str, str] = {}
    images: list[str] = []
    for child in element:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        namespace, _, name = child.tag.rpartition("}")
        namespace = namespace.lstrip("{")
        if namespace not in ("", G_NS, _ATOM_NS):
            continue
        text = child.get("href") if name == "link" and namespace == _ATOM_NS else child.text
        text = (text or "").strip()
        if not text:
            continue
        if name in _MERCHANT_IMAGES:
            images += _split_list(text)
        elif namespace == G_NS or name not in values:  # g:title wins over RSS's title
            values[name] = text
    fields = _merchant_fields(values)
    if images:
        fields["image_urls"] = images
    return fields


__all__ = [
    "FORMATS",
    "FeedError",
    "FeedProblem",
    "FeedRow",
    "Format",
    "detect_format",
    "read_feed",
]
