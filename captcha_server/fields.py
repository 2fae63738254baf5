"""Typed reads of what a client sent: every field of every protocol is read through here.

A value of the wrong JSON type, a form field sent as a file part, a body that is not a JSON
object or nests deeper than the parser can follow becomes the 2captcha error the protocol
documents (a `CaptchaError`), never an exception the handlers do not expect (an HTTP 500).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from captcha_server.errors import CaptchaError

BAD = "ERROR_BAD_PARAMETERS"
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"", "0", "false", "no"})


def json_object(body: bytes, charset: str | None = None) -> dict[str, Any]:
    """The JSON object in `body`; anything else (not JSON, not an object, an unknown charset,
    nesting deep enough to exhaust the parser's recursion) is ERROR_BAD_PARAMETERS."""
    try:
        data = json.loads(body.decode(charset or "utf-8"))
    except (ValueError, LookupError, RecursionError) as exc:
        raise CaptchaError(BAD, "body is not JSON") from exc
    if not isinstance(data, dict):
        raise CaptchaError(BAD, "body must be a JSON object")
    return data


def text(data: Mapping[str, Any], name: str, code: str = BAD) -> str | None:
    """A string field, None when absent or null; any other type (a number, a list, a form field
    sent as a file) raises `code`."""
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise CaptchaError(code, f"{name} must be a string")


def mapping(data: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """An object field (a JSON object), None when absent or null."""
    value = data.get(name)
    if value is None or isinstance(value, Mapping):
        return value
    raise CaptchaError(BAD, f"{name} must be an object")


def integer(data: Mapping[str, Any], *names: str) -> int:
    """The first of `names` that is present, as an int (0 when none is): a JSON integer or
    boolean, or a string of digits (form fields). Floats and other types are refused."""
    for name in names:
        value = data.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, bool | int):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise CaptchaError(BAD, f"{name} must be an integer")
    return 0


def flag(data: Mapping[str, Any], name: str) -> bool:
    """A yes/no field: a JSON boolean, 0/1, or one of 1/0/true/false/yes/no as text."""
    value = data.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise CaptchaError(BAD, f"{name} must be 0/1 or true/false")


def number(data: Mapping[str, Any], name: str, default: float) -> float:
    """A finite number (JSON number or numeric text); `default` when absent."""
    value = data.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            result = float(value)
        except ValueError:
            result = math.nan
        if math.isfinite(result):
            return result
    raise CaptchaError(BAD, f"{name} must be a number")


def task_id(data: Mapping[str, Any], name: str) -> str | None:
    """A task id as text: a JSON integer or a string (its digits are checked on lookup)."""
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise CaptchaError("ERROR_WRONG_ID_FORMAT", f"{name} must be digits")
