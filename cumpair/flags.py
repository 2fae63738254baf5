"""Settings written as text: booleans ("1", "true", "yes", "on" and their opposites) and counts.

One reading for every boolean setting, whether it comes typed from Scrapy's settings or as text
from the environment or a config file. Scrapy's own `Settings.getbool` is not enough here: it
reads only 0/1/true/false, and it reads anything else as an error only after `int()` fails, where
"yes"/"on" are what an operator writes in an environment file.
"""

from __future__ import annotations

from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_flag(value: Any) -> bool | None:
    """`value` as a boolean: a bool as it is, one of the words above as what it says (any case,
    surrounding spaces ignored); None when it is neither, for the caller to report."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def parse_count(name: str, value: Any, default: int) -> int:
    """`value` as a whole number of 0 or more (None or blank: `default`); ValueError, naming the
    setting `name`, for anything else."""
    text = "" if value is None else str(value).strip()
    try:
        count = int(text) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {text!r}") from None
    if count < 0:
        raise ValueError(f"{name} must be 0 or more, not {count}")
    return count
