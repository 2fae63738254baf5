"""How an item travels from a crawl process to the indexer: one JSON document per stream entry.

JSON keeps the entries readable with `redis-cli XRANGE` and free of pickle's code execution;
prices are Decimals in the crawl (never floats), so they travel tagged as ``{"$decimal": "9.99"}``
and come back as Decimals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

#: The field of a stream entry that holds the item.
ITEM_FIELD = "item"
#: The field that names the crawl run (the frontier's id) the item came from.
RUN_FIELD = "run"
_DECIMAL = "$decimal"


class MessageError(ValueError):
    """A stream entry that is not an item this module wrote (kept aside, never indexed)."""


def encode_item(item: Mapping[str, Any]) -> str:
    """The JSON text of an item (a mapping of plain values, Decimals, lists and dicts)."""
    return json.dumps(dict(item), default=_encode_value, ensure_ascii=False, sort_keys=True)


def decode_item(text: str | bytes) -> dict[str, Any]:
    """The item `encode_item` wrote; raises `MessageError` for anything else."""
    try:
        item = json.loads(text, object_hook=_decode_object)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"not an item: {exc}") from exc
    if not isinstance(item, dict) or not item.get("shop") or not item.get("url"):
        raise MessageError("not an item: no shop and url")
    return item


def _encode_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {_DECIMAL: str(value)}
    raise TypeError(f"cannot send a {type(value).__name__} to the indexer")


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _DECIMAL in obj:
        return Decimal(obj[_DECIMAL])
    return obj


__all__ = ["ITEM_FIELD", "RUN_FIELD", "MessageError", "decode_item", "encode_item"]
