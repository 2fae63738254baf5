"""`AlertOptions`: every tunable of the alerts, built whole from ``CUMPAIR_ALERTS_*`` settings.

The Scrapy settings (`cumpair_scraper/settings.py`) declare them from `setting_defaults()`;
`cumpair ingest` and `cumpair watch check` read the same names from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

from cumpair.flags import parse_flag

SETTINGS_PREFIX = "CUMPAIR_ALERTS_"


@dataclass(frozen=True)
class AlertOptions:
    """How alerts are checked and delivered; field ``x`` is the setting ``CUMPAIR_ALERTS_X``."""

    enabled: bool = True  # check watches after every crawl and ingest
    webhook_timeout_s: float = 10.0  # per HTTP attempt
    retries: int = 3  # further attempts after a failed delivery, within one check
    backoff_s: float = 1.0  # wait before the first retry, doubled for each next one
    deadline_s: float = 60.0  # delivery stops after this long; undelivered notices wait
    smtp_host: str = ""  # e-mail alerts need an SMTP server; empty = e-mail notices fail
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "cumpair@localhost"
    smtp_starttls: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.deadline_s <= 0:
            raise ValueError("retries and backoff_s must be >= 0, deadline_s > 0")
        if self.webhook_timeout_s <= 0:
            raise ValueError("webhook_timeout_s must be > 0")

    @classmethod
    def setting_defaults(cls) -> dict[str, Any]:
        """``{CUMPAIR_ALERTS_<FIELD>: default}`` for every field."""
        return {SETTINGS_PREFIX + f.name.upper(): f.default for f in fields(cls)}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """The options the settings give (Scrapy `Settings`, a dict, `os.environ`); text values
        are converted to each field's type; a bad one raises `ValueError` naming the setting."""
        values = {}
        for f in fields(cls):
            name = SETTINGS_PREFIX + f.name.upper()
            if name in settings and settings.get(name) is not None:
                values[f.name] = _convert(name, settings.get(name), type(f.default))
        return cls(**values)

    @classmethod
    def from_environ(cls) -> Self:
        return cls.from_settings(os.environ)


def _convert(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            flag = parse_flag(text)
            if flag is None:
                raise ValueError("not a boolean")
            return flag
        return kind(text)
    except ValueError as exc:
        raise ValueError(f"setting {name}={value!r}: {exc}") from None
