"""The `cumpair search`, `history`, `products` and `serve` sub-commands (and search_index.py).

`add_parser(subparsers)` registers them; each opens the store read-only, so they run beside
a crawl that is writing it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cumpair.cli_options import add_index_option, price_argument

if TYPE_CHECKING:
    from cumpair.search.ranking_options import RankingOptions


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    add_index_option(parser)
    parser.add_argument(
        "--images", metavar="DIR", help="where crawled photos are (default: INDEX/images)"
    )
    parser.add_argument(
        "--encoders", default="auto", choices=("auto", "offline", "clip"),
        help="encoders the index was built with (auto: CLIP if its weights are here)",
    )  # fmt: skip


def add_ranking_arguments(parser: argparse.ArgumentParser) -> None:
    """How offers are ranked (over the ``CUMPAIR_RANKING_*`` settings, see `ranking_options`)."""
    from cumpair.search.ranking_options import RANK_BY

    parser.add_argument(
        "--rank-by", choices=RANK_BY,
        help="rank offers by item price, total price with shipping, or unit price "
        "(default: CUMPAIR_RANKING_BY, else price)",
    )  # fmt: skip
    parser.add_argument(
        "--ship-to",
        metavar="CC",
        help="country shipping is priced to (DE, FR...; for --rank-by total)",
    )
    parser.add_argument(
        "--rates", metavar="FILE",
        help="currency rate file (JSON or the ECB's CSV) to compare offers across currencies",
    )  # fmt: skip
    parser.add_argument("--currency", metavar="CODE", help="currency to compare in (ISO 4217)")


def ranking_from_args(args: argparse.Namespace) -> RankingOptions:
    """The ranking the environment's settings and the command line's options give; exits with
    a message on a bad option or an unusable rate file."""
    from cumpair.search.ranking_options import RankingOptions, RankingOptionsError
    from cumpair.search.rates import RatesError, load_rates

    try:
        options = RankingOptions.from_environ()
        if getattr(args, "rates", None):
            options = replace(options, rates=load_rates(args.rates))
        return options.with_overrides(
            by=getattr(args, "rank_by", None),
            ship_to=getattr(args, "ship_to", None),
            currency=getattr(args, "currency", None),
        )
    except (RatesError, RankingOptionsError) as exc:
        raise SystemExit(f"cumpair: {exc}") from None


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `cumpair search` (shared with search_index.py)."""
    from cumpair.search.ranking import CONDITIONS

    query = parser.add_mutually_exclusive_group()
    query.add_argument("--image", metavar="PATH", help="find the product in this photo")
    query.add_argument("--text", help="find products matching this text")
    query.add_argument("--gtin", metavar="DIGITS", help="find the product with this GTIN/EAN/UPC")
    parser.add_argument("-k", type=_positive, default=5, help="products to show (5)")
    parser.add_argument(
        "--shop", action="append", help="only offers of this shop (repeat for several)"
    )
    parser.add_argument(
        "--max-price", type=price_argument, help="only offers at or below this price"
    )
    parser.add_argument(
        "--condition", type=str.capitalize, choices=CONDITIONS,
        help="only offers in this condition (an offer stating none counts as new)",
    )  # fmt: skip
    add_ranking_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--explain", action="store_true", help="show why offers were grouped")
    parser.add_argument("--no-ocr", action="store_true", help="do not OCR photo queries")
    parser.add_argument(
        "--regroup", action="store_true", help="regroup every offer into products first"
    )
    _common(parser)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `search`, `history`, `products` and `serve` on the `cumpair` command."""
    search = subparsers.add_parser("search", help="find a product by photo, text or GTIN")
    add_search_arguments(search)
    search.set_defaults(func=run_search)

    history = subparsers.add_parser("history", help="price history of a product or offer URL")
    history.add_argument("reference", help="product id (a number) or an offer's URL")
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _common(history)
    history.set_defaults(func=run_history)

    products = subparsers.add_parser("products", help="every product with its offers (export)")
    add_index_option(products)
    add_ranking_arguments(products)
    products.add_argument(
        "--json", action="store_true", help="one JSON object per product per line"
    )
    products.set_defaults(func=run_products)

    serve = subparsers.add_parser("serve", help="the comparison page and its JSON API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    serve.add_argument("--no-ocr", action="store_true", help="do not OCR photo queries")
    add_ranking_arguments(serve)
    _common(serve)
    serve.set_defaults(func=run_serve)


def limit_search_threads(default: int) -> None:
    """Bound FAISS's OpenMP threads to ``CUMPAIR_SEARCH_THREADS`` (else `default`; 0 leaves
    FAISS's own choice); why: `cumpair.faiss_threads`."""
    from cumpair.faiss_threads import SETTING, search_threads, set_faiss_threads

    try:
        threads = search_threads(os.environ.get(SETTING), default)
    except ValueError as exc:
        raise SystemExit(f"cumpair: {exc}") from None
    set_faiss_threads(threads)


def open_service(args: argparse.Namespace, *, regroup: bool = False, vectors: bool = True):
    """The store (read-only), the grouping and a `SearchService` over them.

    `vectors=False` opens the store's offer rows alone (`OfferRows`: no FAISS file read, no
    vector log replayed, on a large index most of the opening; neither numpy nor FAISS
    imported, most of a small one's): enough for GTIN lookups and histories, which read rows
    only."""
    from cumpair.index import StoreError, StoreLockedError, store_exists
    from cumpair.search.products import ProductGroups
    from cumpair.search.service import SearchService

    path = Path(args.index)
    if not store_exists(path):
        raise SystemExit(f"cumpair: no index at {path} (crawl first, or pass --index)")
    try:
        if vectors or regroup:
            from cumpair.index import ProductStore

            store = ProductStore.open(path, readonly=True)
        else:
            from cumpair.index import OfferRows

            store = OfferRows.open(path)
    except (StoreError, OSError) as exc:  # too new, not migratable now, a file gone: say why
        raise SystemExit(
            f"cumpair: cannot open the index at {path}: {exc} (`cumpair index check` says more)"
        ) from None
    if regroup:
        from cumpair.search.store_scan import first_vectors, scan_offers

        try:  # products are written by the store's one writer: refused while a crawl writes
            writer = ProductGroups.open(path)
        except StoreLockedError as exc:
            raise SystemExit(f"cumpair: cannot regroup now: {exc}") from None
        with writer as groups:
            products, offers = groups.regroup(scan_offers(store), first_vectors(store))
        print(f"regrouped {offers} offers into {products} products", file=sys.stderr)
    groups = ProductGroups.open(path, readonly=not regroup)
    kind = args.encoders

    def encoders():
        from cumpair.embed import load_encoders

        return load_encoders(kind)

    return SearchService(
        store,
        groups,
        encoder_loader=encoders,
        ocr=not getattr(args, "no_ocr", False),
        images_root=args.images,
    )


def run_search(args: argparse.Namespace) -> int:
    from cumpair.search.formatting import format_results
    from cumpair.search.service import QueryError
    from cumpair.search.views import ranked_by, with_condition

    if not (args.image or args.text or args.gtin) and not args.regroup:
        print("cumpair search: give --image, --text or --gtin", file=sys.stderr)
        return 2
    ranking = ranking_from_args(args)
    vectors = bool(args.image or args.text)
    errors: tuple[type[Exception], ...] = (QueryError,)
    if args.image:
        from cumpair.vision.images import ImageError  # Pillow: only a photo query reads one

        errors = (QueryError, ImageError)
    if vectors or args.regroup:
        limit_search_threads(1)  # one query: see limit_search_threads
    service = open_service(args, regroup=args.regroup, vectors=vectors)
    if not (args.image or args.text or args.gtin):
        return 0
    options = {
        "k": args.k,
        "shops": tuple(args.shop) if args.shop else None,
        "max_price": args.max_price,
        "explain": args.explain,
    }
    try:
        if args.image:
            response = service.search_image(args.image, **options)
        elif args.text:
            response = service.search_text(args.text, **options)
        else:
            response = service.search_gtin(args.gtin, **options)
    except errors as exc:
        print(f"cumpair search: {exc}", file=sys.stderr)
        return 1
    response.products = ranked_by(with_condition(response.products, args.condition), ranking)
    if args.json:
        print(json.dumps(response.to_dict(), indent=2))
    else:
        print(format_results(response), end="")
    return 0


def run_history(args: argparse.Namespace) -> int:
    from cumpair.search.formatting import format_history
    from cumpair.search.service import QueryError

    service = open_service(args, vectors=False)
    try:
        rows = service.history(args.reference)
    except QueryError as exc:
        print(f"cumpair history: {exc}", file=sys.stderr)
        return 1
    if args.json:
        data = [
            {
                "offer_id": record.id,
                "shop": record.shop,
                "url": record.url,
                "title": record.title,
                "history": [
                    {
                        "seen_at": p.seen_at.isoformat(),
                        "price": None if p.price is None else str(p.price),
                        "currency": p.currency,
                        "availability": p.availability,
                    }
                    for p in history
                ],
            }
            for record, history in rows
        ]
        print(json.dumps(data, indent=2))
    else:
        print(format_history(rows), end="")
    return 0


def run_products(args: argparse.Namespace) -> int:
    """Every product, cheapest offer first: JSON lines with --json, else one line each."""
    from cumpair.index import ProductStore, store_exists
    from cumpair.search.export import product_dicts
    from cumpair.search.products import GroupingError, ProductGroups

    path = Path(args.index)
    if not store_exists(path):
        print(f"cumpair products: no index at {path} (crawl or ingest first)", file=sys.stderr)
        return 1
    ranking = ranking_from_args(args)
    try:
        groups = ProductGroups.open(path, readonly=True)
    except GroupingError as exc:
        print(f"cumpair products: {exc}", file=sys.stderr)
        return 1
    with ProductStore.open(path, readonly=True) as store, groups:
        for product in product_dicts(store, groups, ranking):
            if args.json:
                print(json.dumps(product, ensure_ascii=False))
                continue
            offers = product["offers"]
            lowest = product["lowest_price"]  # buyable now (its basis: "lowest_price_basis")
            if lowest and product["lowest_price_condition"] != "New":
                lowest += f" ({product['lowest_price_condition'].lower()})"
            price = f"{lowest} {product['lowest_price_currency']}" if lowest else "-"
            ident = product["product_id"] if product["product_id"] is not None else "-"
            print(f"{ident}\t{len(offers)} offer(s)\tfrom {price}\t{product['title']}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from cumpair.search.server import create_app

    limit_search_threads(0)  # concurrent requests: FAISS's own choice unless set
    service = open_service(args)
    app = create_app(service, ranking=ranking_from_args(args))
    web.run_app(app, host=args.host, port=args.port)
    return 0


def main_search(argv: list[str] | None = None) -> int:
    """search_index.py: the same as `cumpair search`."""
    parser = argparse.ArgumentParser(
        prog="search_index.py", description="Find a product by photo, text or GTIN"
    )
    add_search_arguments(parser)
    return run_search(parser.parse_args(argv))
