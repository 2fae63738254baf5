"""Options every `cumpair` sub-command spells the same way (the store directory, prices).

Imported while the parser is built, so it must stay light: argparse only.
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

DEFAULT_INDEX = "index_data"


def add_index_option(parser: argparse.ArgumentParser, *, what: str = "store directory") -> None:
    """`--index DIR` (the store directory, `args.index`), with `--path`, its old name, kept."""
    parser.add_argument(
        "--index", "--path", dest="index", metavar="DIR", default=DEFAULT_INDEX,
        help=f"{what} ({DEFAULT_INDEX}); --path is the old name",
    )  # fmt: skip


def price_argument(text: str) -> Decimal:
    """An argparse type: a finite, non-negative price (`--max-price`, `--below`)."""
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a price: {text!r}") from exc
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"not a price: {text!r}")
    return value
