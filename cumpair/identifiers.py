"""Product identifiers (GTIN/EAN/UPC): validation and the one canonical form used everywhere.

Shops print the same GTIN as UPC-A (12 digits), EAN-13 or GTIN-14 with leading zeros; comparing
offers across shops needs one form, so every caller goes through `normalize_gtin`.
"""

from __future__ import annotations

import re

from stdnum import ean
from stdnum.exceptions import ValidationError

_SEPARATORS = re.compile(r"[\s\-.]")


def normalize_gtin(value: object) -> str | None:
    """Return the canonical GTIN for `value`, or None when it is not a valid GTIN.

    Canonical form: digits only; GTIN-8/12/13 left-padded to 13 digits (the EAN-13 shoppers
    see), GTIN-14 kept as 14 digits unless its leading digit is a padding zero.
    """
    if value is None:
        return None
    digits = _SEPARATORS.sub("", str(value))
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        return None
    try:
        ean.validate(digits)
    except ValidationError:
        return None
    if len(digits) == 14 and digits[0] == "0":
        digits = digits[1:]
    return digits.zfill(13) if len(digits) < 13 else digits
