"""Currency reference rates from a file the operator provides, so offers in several currencies
can be ranked together, and the ECB's daily feed read into such a file (`cumpair rates fetch`).

Two file formats, told apart by their first character:

- JSON: ``{"base": "EUR", "date": "2026-11-30", "rates": {"USD": "1.0533", "GBP": "0.8312"}}``
  (units of each currency per one `base`; an optional ``"source"`` names where they came from);
- the ECB's CSV (``eurofxref.csv`` from its reference-rates page, base EUR): a header
  ``Date, USD, JPY, ...`` and one row ``30 November 2026, 1.0533, 158.12, ...`` (``N/A`` is
  skipped), or several rows of which the latest is taken.

A rate table never guesses: a currency it lacks stays unconvertible (its offers are shown apart).
Nothing here touches the network except `fetch_ecb_rates`, which only the explicit command calls.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

ECB_DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
_CODE = re.compile(r"^[A-Z]{3}$")
_CENT = Decimal("0.01")


class RatesError(ValueError):
    """A rate file or feed that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class RateTable:
    """Reference rates: units of each currency per one `base`, as of `date`, from `source`."""

    base: str
    date: date
    rates: dict[str, Decimal]
    source: str

    def convert(
        self, amount: Decimal, from_currency: str | None, to_currency: str | None
    ) -> Decimal | None:
        """`amount` in `from_currency` as `to_currency`, to the cent; None when either currency
        is missing from the table."""
        if from_currency == to_currency:
            return amount
        frm, to = self.rates.get(from_currency or ""), self.rates.get(to_currency or "")
        if frm is None or to is None:
            return None
        return (amount / frm * to).quantize(_CENT, rounding=ROUND_HALF_UP)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "date": self.date.isoformat(), "source": self.source}

    def to_json(self) -> str:
        """The table in the JSON file format (see the module docstring)."""
        data = {
            "base": self.base,
            "date": self.date.isoformat(),
            "source": self.source,
            "rates": {code: str(rate) for code, rate in sorted(self.rates.items())},
        }
        return json.dumps(data, indent=2) + "\n"


def load_rates(path: str | Path) -> RateTable:
    """The rate table in the file at `path` (JSON or ECB CSV); RatesError when unusable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RatesError(f"{path}: cannot read the rate file: {exc}") from exc
    if text.lstrip().startswith("{"):
        return _from_json(text, str(path))
    return _from_csv(text, str(path))


def _rate(code: str, value: Any, source: str) -> Decimal:
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise RatesError(f"{source}: rate of {code} is not a number: {value!r}") from None
    if not rate.is_finite() or rate <= 0:
        raise RatesError(f"{source}: rate of {code} must be a positive number, got {value!r}")
    return rate


def _table(base: str, day: date, raw: dict[str, Any], source: str) -> RateTable:
    base = base.strip().upper()
    if not _CODE.match(base):
        raise RatesError(f"{source}: base must be an ISO 4217 code, got {base!r}")
    rates = {base: Decimal(1)}
    for code, value in raw.items():
        code = code.strip().upper()
        if not _CODE.match(code):
            raise RatesError(f"{source}: {code!r} is not an ISO 4217 currency code")
        rates[code] = _rate(code, value, source)
    if len(rates) < 2:
        raise RatesError(f"{source}: no rates in the file")
    return RateTable(base, day, rates, source)


def _from_json(text: str, source: str) -> RateTable:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RatesError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rates"), dict):
        raise RatesError(f'{source}: expected {{"base", "date", "rates": {{...}}}}')
    try:
        day = date.fromisoformat(str(data.get("date")))
    except ValueError:
        raise RatesError(f"{source}: 'date' must be YYYY-MM-DD, got {data.get('date')!r}") from None
    table = _table(str(data.get("base", "")), day, data["rates"], source)
    named = data.get("source")
    return RateTable(table.base, table.date, table.rates, str(named) if named else source)


def _from_csv(text: str, source: str) -> RateTable:
    rows = [[c.strip() for c in row] for row in csv.reader(io.StringIO(text)) if any(row)]
    if len(rows) < 2 or rows[0][0].lower() != "date":
        raise RatesError(f"{source}: expected the ECB CSV (a 'Date, USD, ...' header and rows)")
    header = rows[0]
    dated = []
    for row in rows[1:]:
        try:
            dated.append((_csv_date(row[0]), row))
        except ValueError:
            raise RatesError(f"{source}: bad date {row[0]!r}") from None
    day, latest = max(dated, key=lambda pair: pair[0])
    raw = {
        code: value
        for code, value in zip(header[1:], latest[1:], strict=False)
        if code and value and value.upper() != "N/A"
    }
    return _table("EUR", day, raw, source)


def _csv_date(text: str) -> date:
    for form in ("%d %B %Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, form).date()
        except ValueError:
            continue
    raise ValueError(text)


def parse_ecb_xml(body: bytes, source: str = ECB_DAILY_URL) -> RateTable:
    """The ECB's daily reference-rate XML (``<Cube time=...><Cube currency= rate=/>``)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise RatesError(f"{source}: not the ECB's XML: {exc}") from exc
    dated = [e for e in root.iter() if e.tag.endswith("Cube") and e.get("time")]
    if not dated:
        raise RatesError(f"{source}: no dated rates in the ECB's XML")
    day = date.fromisoformat(dated[0].get("time", ""))
    raw = {c.get("currency", ""): c.get("rate") for c in dated[0] if c.get("currency")}
    return _table("EUR", day, raw, source)


def fetch_ecb_rates(url: str = ECB_DAILY_URL, timeout: float = 30.0) -> RateTable:
    """Today's ECB reference rates, fetched from `url` (the network: only on explicit request)."""
    from urllib.error import URLError
    from urllib.request import urlopen

    try:
        with urlopen(url, timeout=timeout) as response:
            body = response.read()
    except (URLError, OSError) as exc:
        raise RatesError(f"{url}: cannot fetch the rates: {exc}") from exc
    return parse_ecb_xml(body, url)
