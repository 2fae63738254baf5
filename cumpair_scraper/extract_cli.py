"""`cumpair extract FILE_OR_URL`: the item the crawl would yield for one product page.

The operator's tool for writing a shop config: it runs the crawl's own extraction
(`cumpair_scraper.extraction`) and validation pipeline (`pipelines.validate`) on one saved page
or URL and prints the item with the feed's field names, `field_sources`, the page's `problems`, and
`dropped` (the reason) when the validation pipeline would drop it. Images, specs and the index
(the later pipelines) are not run. `scrapy parse` does the same inside a Scrapy project.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from itemadapter import ItemAdapter
from scrapy.exceptions import DropItem
from scrapy.http import HtmlResponse
from scrapy.settings import Settings
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.project import get_project_settings
from scrapy.utils.serialize import ScrapyJSONEncoder

from cumpair_scraper.extraction import extract_product
from cumpair_scraper.pipelines.validate import ValidationPipeline
from cumpair_scraper.shopconfig import (
    ShopConfig,
    ShopConfigError,
    load_shop_configs,
    parse_shop_config,
)

GENERIC_SHOP = ShopConfig(name="generic", display_name="any shop (no selectors)")


class ExtractError(Exception):
    """The page or the shop config could not be read; the message says which and why."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `extract` on the `cumpair` command."""
    parser = subparsers.add_parser("extract", help="the item the crawl would yield for a page")
    parser.add_argument("page", metavar="FILE_OR_URL", help="a saved product page or its URL")
    parser.add_argument("--url", help="the page's URL (for a saved file; resolves its links)")
    parser.add_argument(
        "--shop", metavar="NAME_OR_TOML", help="a shop's name or config file (default: none)"
    )
    parser.add_argument("--json", action="store_true", help="print the item as JSON")
    parser.set_defaults(func=run_extract)


def project_settings() -> Settings:
    """The crawl's settings (SHOP_CONFIG_DIRS, USER_AGENT), read as `scrapy crawl` reads them
    (the project's settings module, `SCRAPY_<NAME>` environment overrides), from any folder."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "cumpair_scraper.settings")
    return get_project_settings()


def load_shop(reference: str | None, settings: Settings) -> ShopConfig:
    """A shop by name (bundled or in SHOP_CONFIG_DIRS) or from a TOML file; None: generic."""
    if reference is None:
        return GENERIC_SHOP
    path = Path(reference)
    if reference.endswith(".toml") or path.is_file():
        try:
            return parse_shop_config(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise ExtractError(f"cannot read shop config {reference}: {exc}") from exc
    configs = load_shop_configs(settings.getlist("SHOP_CONFIG_DIRS"))
    if reference not in configs:
        raise ExtractError(f"no shop {reference!r}; shops are {', '.join(sorted(configs))}")
    return configs[reference]


def page_response(page: str, url: str | None, settings: Settings) -> HtmlResponse:
    """The page as the spider would get it: fetched when `page` is a URL, else read from disk."""
    if page.startswith(("http://", "https://")):
        request = urllib.request.Request(page, headers={"User-Agent": settings["USER_AGENT"]})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                body, final_url = reply.read(), reply.geturl()
                headers = {"Content-Type": reply.headers.get("Content-Type", "text/html")}
        except OSError as exc:
            raise ExtractError(f"cannot fetch {page}: {exc}") from exc
        return HtmlResponse(url or final_url, body=body, headers=headers)
    path = Path(page)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ExtractError(f"cannot read {page}: {exc}") from exc
    return HtmlResponse(url or path.resolve().as_uri(), body=body)


class _PageCrawler:
    """What the validation pipeline needs of a crawler (its settings and stats), for one page."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stats = MemoryStatsCollector(self)  # type: ignore[arg-type]


def extract_record(
    response: HtmlResponse, shop: ShopConfig, settings: Settings | None = None
) -> dict[str, Any]:
    """The item as a feed record, plus `problems` and `dropped` (None when the crawl keeps it)."""
    extraction = extract_product(response, shop)
    record = ItemAdapter(extraction.item).asdict()
    record["problems"] = extraction.problems
    try:
        ValidationPipeline(_PageCrawler(settings or project_settings())).process_item(  # type: ignore[arg-type]
            extraction.item
        )
        record["dropped"] = None
    except DropItem as exc:
        record["dropped"] = str(exc)
    return json.loads(json.dumps(record, cls=ScrapyJSONEncoder))  # the feed's value types


def run_extract(args: argparse.Namespace) -> int:
    settings = project_settings()
    try:
        shop = load_shop(args.shop, settings)
        record = extract_record(page_response(args.page, args.url, settings), shop, settings)
    except (ExtractError, ShopConfigError) as exc:
        print(f"cumpair extract: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(format_record(record), end="")
    return 0


def format_record(record: dict[str, Any]) -> str:
    """A readable listing: each filled field with the source it came from."""
    sources = record.get("field_sources") or {}
    lines = []
    for name, value in record.items():
        if name in ("field_sources", "problems", "dropped") or value in (None, [], {}, ""):
            continue
        shown = value if len(str(value)) <= 100 else str(value)[:97] + "..."
        source = f"  [{sources[name]}]" if name in sources else ""
        lines.append(f"{name}: {shown}{source}")
    lines += [f"problem: {p}" for p in record.get("problems") or []]
    if record.get("dropped"):
        lines.append(f"DROPPED: {record['dropped']}")
    return "\n".join(lines) + "\n"
