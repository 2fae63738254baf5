"""Shop configuration files: one TOML file per shop describes how to crawl it.

Adding a shop means adding a file (to `cumpair_scraper/shops/` or a directory named in the
`SHOP_CONFIG_DIRS` setting), never code. Selectors here are the *fallback* used when a product
page carries no schema.org data; structured data always wins.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cumpair.search.shipping import ShippingRule

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FIELD_NAMES = frozenset(
    {
        "title",
        "price",
        "currency",
        "availability",
        "condition",
        "brand",
        "model",
        "sku",
        "gtin",
        "description",
        "category",
        "images",
    }
)


class ShopConfigError(ValueError):
    """A shop config file is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class ShopConfig:
    """How to crawl one shop. See `cumpair_scraper/shops/*.toml` for documented examples."""

    name: str
    display_name: str
    start_urls: tuple[str, ...] = ()
    sitemap_urls: tuple[str, ...] = ()
    javascript: bool = False
    wait_for: str | None = None
    default_currency: str | None = None
    category_links: str | None = None
    next_page: str | None = None
    product_links: str | None = None
    product_url_pattern: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    availability_map: dict[str, str] = field(default_factory=dict)
    shipping: tuple[dict[str, Any], ...] = ()  # rule dicts, see `shipping_rules_from`
    source: str = ""

    @property
    def allowed_domains(self) -> list[str]:
        """Hosts of the start and sitemap URLs: the crawl never leaves them."""
        return sorted({urlsplit(u).hostname or "" for u in self.start_urls + self.sitemap_urls})

    def rebased(self, base_url: str) -> ShopConfig:
        """The same shop served from another origin (a staging copy, a test server's port)."""
        base = urlsplit(base_url)
        if not base.scheme or not base.netloc:
            raise ShopConfigError(f"base_url must be an absolute URL, got {base_url!r}")

        def move(url: str) -> str:
            parts = urlsplit(url)
            return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))

        return replace(
            self,
            start_urls=tuple(map(move, self.start_urls)),
            sitemap_urls=tuple(map(move, self.sitemap_urls)),
        )


def parse_shop_config(text: str, source: str) -> ShopConfig:
    """Parse and validate one config file's text; raise ShopConfigError on any mistake."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ShopConfigError(f"{source}: not valid TOML: {exc}") from exc
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ShopConfigError(f"{source}: 'name' must match {_NAME.pattern}")
    start_urls = tuple(raw.get("start_urls", ()))
    sitemap_urls = tuple(raw.get("sitemap_urls", ()))
    if not start_urls and not sitemap_urls:
        raise ShopConfigError(f"{source}: give 'start_urls' or 'sitemap_urls'")
    links = raw.get("links", {})
    fields = raw.get("fields", {})
    unknown = set(fields) - FIELD_NAMES
    if unknown:
        raise ShopConfigError(f"{source}: unknown [fields] {sorted(unknown)}")
    js = raw.get("javascript", {})
    pattern = links.get("product_url_pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ShopConfigError(f"{source}: bad product_url_pattern: {exc}") from exc
    return ShopConfig(
        name=name,
        display_name=raw.get("display_name", name),
        start_urls=start_urls,
        sitemap_urls=sitemap_urls,
        javascript=bool(js.get("enabled", False)),
        wait_for=js.get("wait_for"),
        default_currency=raw.get("default_currency"),
        category_links=links.get("category"),
        next_page=links.get("next_page"),
        product_links=links.get("product"),
        product_url_pattern=pattern,
        fields=dict(fields),
        availability_map=dict(raw.get("availability", {})),
        shipping=shipping_rules_from(raw.get("shipping"), raw.get("default_currency"), source),
        source=source,
    )


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def shipping_rules_from(
    table: Any, default_currency: str | None, source: str
) -> tuple[dict[str, Any], ...]:
    """The shop's shipping rules from its ``[shipping]`` table: ``rate`` (flat, to every
    country) and ``free_from`` (free from this order value), ``currency`` (default: the shop's
    ``default_currency``), and ``[shipping.countries.XX]`` tables with their own ``rate`` and
    ``free_from`` for country XX (ISO 3166 alpha-2). Used where a page states no shipping."""
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise ShopConfigError(f"{source}: [shipping] must be a table")
    code = table.get("currency", default_currency)
    if code is not None and not (isinstance(code, str) and re.match(r"^[A-Z]{3}$", code)):
        raise ShopConfigError(f"{source}: [shipping] currency must be an ISO 4217 code")
    countries = table.get("countries", {})
    if not isinstance(countries, dict):
        raise ShopConfigError(f"{source}: [shipping.countries] must hold one table per country")
    rules = []
    for country, entry in [(None, table), *countries.items()]:
        if country is not None and not (isinstance(country, str) and _COUNTRY.match(country)):
            raise ShopConfigError(f"{source}: [shipping.countries.{country}]: not a country code")
        where = "[shipping]" if country is None else f"[shipping.countries.{country}]"
        rate = _amount(entry.get("rate"), f"{source}: {where} rate")
        free_from = _amount(entry.get("free_from"), f"{source}: {where} free_from")
        if rate is None and free_from is None:
            if country is not None:
                raise ShopConfigError(f"{source}: {where} gives neither rate nor free_from")
            continue
        rules.append(ShippingRule(country, rate, code, free_from, "shop").to_dict())
    return tuple(rules)


def _amount(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ShopConfigError(f"{where} must be a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ShopConfigError(f"{where} must be a non-negative number, got {value!r}")
    return amount


def _bundled_files() -> Iterator[tuple[str, str]]:
    folder = resources.files("cumpair_scraper") / "shops"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            yield f"cumpair_scraper/shops/{entry.name}", entry.read_text(encoding="utf-8")


def bundled_configs_on_port(folder: Path, port: int) -> Path:
    """The bundled shop configs with the demo server's port (`cumpair.demo.server.DEFAULT_PORT`)
    in their URLs changed to `port`, written to `folder` (made if missing): a crawl of demo
    shops served on a spare port passes it as SHOP_CONFIG_DIRS, which overrides them by name."""
    from cumpair.demo.server import DEFAULT_PORT

    folder.mkdir(parents=True, exist_ok=True)
    for source, text in _bundled_files():
        changed = text.replace(f":{DEFAULT_PORT}/", f":{port}/")
        (folder / Path(source).name).write_text(changed, encoding="utf-8")
    return folder


def load_shop_configs(extra_dirs: Iterable[str | Path] = ()) -> dict[str, ShopConfig]:
    """All shop configs: the bundled ones, then those in `extra_dirs` (which may override)."""
    texts = list(_bundled_files())
    for folder in extra_dirs:
        for path in sorted(Path(folder).glob("*.toml")):
            texts.append((str(path), path.read_text(encoding="utf-8")))
    configs: dict[str, ShopConfig] = {}
    for source, text in texts:
        config = parse_shop_config(text, source)
        configs[config.name] = config
    return configs
