"""`cumpair rates fetch|show`: the currency rate file that lets offers in several currencies be
ranked together (`rates.py` documents its formats).

`fetch` is the only thing in Cumpair that asks the network for rates, and only when run: it
reads the ECB's daily reference rates (or another URL serving the same XML) and writes them as
the JSON rate file; `show` checks a file and prints its date and rates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `rates` and its sub-commands on the `cumpair` command."""
    from cumpair.search.rates import ECB_DAILY_URL

    rates = subparsers.add_parser("rates", help="currency rate file: fetch the ECB's, show one")
    actions = rates.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="write today's ECB reference rates to a file")
    fetch.add_argument("--out", required=True, metavar="FILE", help="the JSON rate file to write")
    fetch.add_argument("--url", default=ECB_DAILY_URL, help=f"the feed (default {ECB_DAILY_URL})")
    fetch.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    fetch.set_defaults(func=run_fetch)
    show = actions.add_parser("show", help="check a rate file and print its date and rates")
    show.add_argument("file", help="a JSON rate file or the ECB's CSV")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_show)


def run_fetch(args: argparse.Namespace) -> int:
    from cumpair.search.rates import RatesError, fetch_ecb_rates

    try:
        table = fetch_ecb_rates(args.url, timeout=args.timeout)
    except RatesError as exc:
        print(f"cumpair rates fetch: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    partial = out.with_name(out.name + ".part")
    partial.write_text(table.to_json(), encoding="utf-8")
    partial.replace(out)  # a reader never sees half a file
    print(f"{len(table.rates) - 1} rates of {table.date.isoformat()} written to {out}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from cumpair.search.rates import RatesError, load_rates

    try:
        table = load_rates(args.file)
    except RatesError as exc:
        print(f"cumpair rates show: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(table.to_json(), end="")
        return 0
    print(f"{table.source}: 1 {table.base} on {table.date.isoformat()}")
    for code, rate in sorted(table.rates.items()):
        if code != table.base:
            print(f"  {code}  {rate}")
    return 0
