"""`cumpair watch add|list|remove|check`: price-drop alerts from the command line.

`add` checks that the reference names something in the store before saving the watch;
`check` runs one alerts pass now (what every crawl and ingest does at its end).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cumpair.cli_options import add_index_option, price_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `watch` and its sub-commands on the `cumpair` command."""
    watch = subparsers.add_parser("watch", help="price-drop alerts: add, list, remove, check")
    actions = watch.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="tell me when a product's price drops")
    add.add_argument("reference", help="product id, GTIN or an offer's URL")
    add.add_argument(
        "--below", type=price_argument, metavar="PRICE", help="notify at or under PRICE"
    )
    add.add_argument(
        "--drop-pct", type=float, metavar="N",
        help="notify when a shop's price is N%% under its recent trend (30-day median)",
    )  # fmt: skip
    channel = add.add_mutually_exclusive_group(required=True)
    channel.add_argument("--webhook", metavar="URL", help="POST the notice as JSON to URL")
    channel.add_argument("--email", metavar="ADDR", help="e-mail the notice (SMTP settings)")
    add_index_option(add)
    add.set_defaults(func=run_add)

    listing = actions.add_parser("list", help="the watches and their notices")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_index_option(listing)
    listing.set_defaults(func=run_list)

    remove = actions.add_parser("remove", help="delete a watch")
    remove.add_argument("watch_id", type=int, help="the id `watch list` shows")
    add_index_option(remove)
    remove.set_defaults(func=run_remove)

    check = actions.add_parser("check", help="check every watch and send notices now")
    add_index_option(check)
    check.set_defaults(func=run_check)


def _fail(message: str) -> int:
    print(f"cumpair watch: {message}", file=sys.stderr)
    return 1


def _store_dir(args: argparse.Namespace) -> Path:
    return Path(args.index)


def run_add(args: argparse.Namespace) -> int:
    from cumpair.alerts.book import AlertError, WatchBook, make_watch
    from cumpair.alerts.resolve import describe_watched

    try:
        watch = make_watch(
            args.reference,
            below=args.below,
            drop_pct=args.drop_pct,
            webhook=args.webhook,
            email=args.email,
        )
        described = describe_watched(_store_dir(args), watch)
        with WatchBook.open(_store_dir(args)) as book:
            saved = book.add(watch)
    except AlertError as exc:
        return _fail(str(exc))
    print(f"watch {saved.id}: {described}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from cumpair.alerts.book import AlertError, WatchBook

    try:
        book = WatchBook.open(_store_dir(args))
    except AlertError as exc:
        return _fail(str(exc))
    with book:
        watches, notices = book.watches(), book.notices()
    if args.json:
        told = {w.id: [n for n in notices if n.watch_id == w.id] for w in watches}
        data = [{**w.to_dict(), "notices": [_notice_dict(n) for n in told[w.id]]} for w in watches]
        print(json.dumps(data, indent=2))
        return 0
    if not watches:
        print("no watches")
    for w in watches:
        target = f"at or below {w.below}" if w.below is not None else ""
        if w.drop_pct is not None:
            target += (" or " if target else "") + f"{w.drop_pct:g}% under the trend"
        sent = sum(1 for n in notices if n.watch_id == w.id and n.status == "sent")
        print(f"{w.id}\t{w.kind} {w.reference}\t{target}\t{w.webhook or w.email}\t{sent} sent")
    return 0


def _notice_dict(notice) -> dict:
    return {
        "id": notice.id,
        "offer_id": notice.offer_id,
        "shop": notice.shop,
        "price": str(notice.price),
        "currency": notice.currency,
        "url": notice.url,
        "reason": notice.reason,
        "status": notice.status,
        "attempts": notice.attempts,
    }


def run_remove(args: argparse.Namespace) -> int:
    from cumpair.alerts.book import AlertError, WatchBook

    try:
        with WatchBook.open(_store_dir(args)) as book:
            book.remove(args.watch_id)
    except AlertError as exc:
        return _fail(str(exc))
    print(f"watch {args.watch_id} removed")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from cumpair.alerts.options import AlertOptions
    from cumpair.alerts.run import run_alerts

    try:
        options = AlertOptions.from_environ()
    except ValueError as exc:
        return _fail(str(exc))
    result = run_alerts(_store_dir(args), options)
    if result is None:
        print("nothing watched")
        return 0
    print(
        f"{result.queued} new notice(s); sent {result.sent}, failed {result.failed},"
        f" waiting {result.pending}"
    )
    return 0
