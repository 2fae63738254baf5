"""`RankingOptions`: how a product's offers are compared, built whole from ``CUMPAIR_RANKING_*``
settings (Scrapy settings, a dict, the environment) and overridden per query by the CLI's and
the API's options.

- ``CUMPAIR_RANKING_BY``: ``price`` (the item's price, default), ``total`` (price plus shipping
  to ``CUMPAIR_RANKING_SHIP_TO``) or ``unit`` (price per kg, litre or piece: consumables);
- ``CUMPAIR_RANKING_SHIP_TO``: ISO 3166 country code shipping is priced to (empty: rules for
  every country only);
- ``CUMPAIR_RANKING_RATES``: a currency rate file (`rates.py` says its formats); empty: offers
  in different currencies are shown apart, never ranked together;
- ``CUMPAIR_RANKING_CURRENCY``: the currency to compare in (empty: that of most offers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Self

from cumpair.search.rates import RateTable, load_rates

SETTINGS_PREFIX = "CUMPAIR_RANKING_"
RANK_BY = ("price", "total", "unit")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class RankingOptionsError(ValueError):
    """A ranking option that cannot be used; the message names the option."""


@dataclass(frozen=True)
class RankingOptions:
    """How offers are ranked; see the module docstring for each field's setting."""

    by: str = "price"
    ship_to: str | None = None
    rates: RateTable | None = None
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.by not in RANK_BY:
            raise RankingOptionsError(
                f"rank by must be one of {', '.join(RANK_BY)}, not {self.by!r}"
            )
        if self.ship_to is not None and not _COUNTRY.match(self.ship_to):
            raise RankingOptionsError(
                f"ship to must be a country code (DE, FR...), not {self.ship_to!r}"
            )
        if self.currency is not None and not _CURRENCY.match(self.currency):
            raise RankingOptionsError(f"currency must be an ISO 4217 code, not {self.currency!r}")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """The options the settings give; a bad one raises `RankingOptionsError`."""

        def get(name: str) -> str | None:
            value = settings.get(SETTINGS_PREFIX + name)
            return str(value).strip() or None if value is not None else None

        rates = get("RATES")
        return cls(
            by=(get("BY") or "price").lower(),
            ship_to=_upper(get("SHIP_TO")),
            rates=load_rates(rates) if rates else None,
            currency=_upper(get("CURRENCY")),
        )

    @classmethod
    def from_environ(cls) -> Self:
        return cls.from_settings(os.environ)

    def with_overrides(
        self, *, by: str | None = None, ship_to: str | None = None, currency: str | None = None
    ) -> RankingOptions:
        """These options with a query's choices (None keeps the setting)."""
        return replace(
            self,
            by=(by or self.by).lower(),
            ship_to=_upper(ship_to) or self.ship_to,
            currency=_upper(currency) or self.currency,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "ship_to": self.ship_to,
            "currency": self.currency,
            "rates": None if self.rates is None else self.rates.to_dict(),
        }


def _upper(value: str | None) -> str | None:
    return value.strip().upper() or None if value else None
