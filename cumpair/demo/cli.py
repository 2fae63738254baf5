"""`cumpair demo ...`: serve the demo shops, export a catalog, write label evaluation sets.

Registered by `cumpair.cli` through `add_parser`; also runnable as `python -m cumpair.demo`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("cumpair.demo")

PRODUCTS_HELP = "products in the catalog (80)"
SEED_HELP = "catalog seed: the same seed gives the same shops (7)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `demo` and its sub-commands on the `cumpair` parser."""
    demo = subparsers.add_parser("demo", help="the bundled demo shops")
    commands = demo.add_subparsers(dest="demo_command", metavar="ACTION", required=True)

    serve = commands.add_parser("serve", help="serve the four demo shops until interrupted")
    serve.add_argument(
        "--port", type=_positive, default=8070,
        help="port every shop listens on, each at its own 127.0.0.2x address (8070)",
    )  # fmt: skip
    serve.add_argument("--products", type=_positive, default=80, help=PRODUCTS_HELP)
    serve.add_argument("--seed", type=int, default=7, help=SEED_HELP)
    serve.add_argument(
        "--rate-limit-every",
        type=_positive,
        default=None,
        help="answer every Nth request of a host with 429",
    )
    serve.add_argument(
        "--retry-after", type=int, default=1, help="Retry-After seconds sent with a 429 (1)"
    )
    serve.add_argument(
        "--challenge", choices=("first", "solve"), default=None,
        help="captcha challenge: 'first' on a host's first page, 'solve' until one is solved",
    )  # fmt: skip
    serve.add_argument(
        "--challenge-shops",
        default=None,
        help="comma-separated shops that challenge (default: all)",
    )
    serve.set_defaults(func=serve_command)

    export = commands.add_parser("export", help="write the catalog's offers as JSON lines")
    export.add_argument("--products", type=_positive, default=80, help=PRODUCTS_HELP)
    export.add_argument("--seed", type=int, default=7, help=SEED_HELP)
    export.add_argument("--out", type=Path, required=True, help="file to write ('-': stdout)")
    export.set_defaults(func=export_command)

    labels = commands.add_parser("labels", help="write label PNGs plus truth.json")
    labels.add_argument("--out", type=Path, required=True, help="directory to write")
    labels.add_argument(
        "--limit", type=_positive, default=None, help="write at most this many labels (all)"
    )
    labels.add_argument("--products", type=_positive, default=80, help=PRODUCTS_HELP)
    labels.add_argument("--seed", type=int, default=7, help=SEED_HELP)
    labels.set_defaults(func=labels_command)

    photo = commands.add_parser(
        "photo", help="write a shopper's photo of a demo product (a query for `cumpair search`)"
    )
    photo.add_argument("--out", type=Path, required=True, help="JPEG file to write")
    photo.add_argument("--shop", default="bluepeak", help="whose product photo to start from")
    photo.add_argument(
        "--product", default=None, help="product id (default: the first sold by 3+ shops)"
    )
    photo.add_argument("--seed", type=int, default=7, help="catalog seed")
    photo.add_argument("--shot", type=int, default=1, help="seed of the photo's distortions")
    photo.set_defaults(func=photo_command)


def serve_command(args: argparse.Namespace) -> int:
    from cumpair.demo.catalog import SHOPS, build_catalog
    from cumpair.demo.server import DemoServer, DemoServerError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    shops = (
        tuple(s.strip() for s in args.challenge_shops.split(",")) if args.challenge_shops else None
    )
    try:
        server = DemoServer(
            build_catalog(args.products, args.seed),
            port=args.port,
            rate_limit_every=args.rate_limit_every,
            retry_after=args.retry_after,
            challenge=args.challenge,
            challenge_shops=shops,
        ).start()
    except DemoServerError as exc:
        print(f"cumpair demo serve: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    for shop in SHOPS:
        count = len(server.catalog.offers_by_shop(shop))
        log.info("%-12s %s/  (%d products)", shop, server.base_url(shop), count)
    log.info("serving; Ctrl-C to stop")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    log.info("stopped after %d requests", len(server.hits))
    return 0


def export_command(args: argparse.Namespace) -> int:
    from cumpair.demo.catalog import build_catalog, iter_export_records

    started = time.perf_counter()
    catalog = build_catalog(args.products, args.seed)
    out = sys.stdout if str(args.out) == "-" else args.out.open("w", encoding="utf-8")
    try:
        count = 0
        for record in iter_export_records(catalog):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    elapsed = time.perf_counter() - started
    print(f"wrote {count} offers of {args.products} products in {elapsed:.1f}s", file=sys.stderr)
    return 0


def labels_command(args: argparse.Namespace) -> int:
    from cumpair.demo.catalog import build_catalog
    from cumpair.demo.images import write_label_set

    catalog = build_catalog(args.products, args.seed)
    truth = write_label_set(catalog, args.out, limit=args.limit)
    print(f"wrote {len(truth)} labels and truth.json to {args.out}", file=sys.stderr)
    return 0


def photo_command(args: argparse.Namespace) -> int:
    """A shop photo re-shot as a shopper would (crop, tilt, blur, JPEG, light), with the truth."""
    from cumpair.demo.catalog import build_catalog
    from cumpair.demo.images import render_product_photo
    from cumpair.search.augment import photo_query

    catalog = build_catalog(seed=args.seed)
    offers = [o for o in catalog.offers if o.shop == args.shop]
    if args.product:
        offers = [o for o in offers if o.product_id == args.product]
    else:
        offers = [o for o in offers if len(catalog.offers_for_product(o.product_id)) >= 3]
    if not offers:
        print(f"no such product at {args.shop}", file=sys.stderr)
        return 1
    offer = offers[0]
    image, applied = photo_query(render_product_photo(offer), seed=args.shot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, "JPEG", quality=85)
    print(
        f"wrote {args.out}: {offer.product.brand} {offer.product.model} ({offer.product_id}), "
        f"{args.shop}'s photo with {', '.join(applied)}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cumpair.demo")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)
