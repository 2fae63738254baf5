"""``cumpair ingest``: run the crawl's stages over offer feeds (JSON lines, CSV, Merchant XML/TSV).

Thin over `cumpair.ingest.runner.ingest`: the flags become one `IngestOptions`
(`options_from_args`); models load only once the feeds are known to be readable. Exit status 2
for a file that cannot be read at all, 1 when the store cannot be opened or a file had rows but
none could be stored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cumpair.cli_options import add_index_option

if TYPE_CHECKING:
    from cumpair.embed.registry import EncoderSet
    from cumpair.ingest.runner import IngestOptions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from cumpair.ingest.formats import FORMATS

    parser = subparsers.add_parser(
        "ingest",
        help="load offers from feed files into the index (as a crawl would)",
        description=(
            "Validate, fetch photos, read specs, embed, store and group the offers of each FILE: "
            "JSON lines or CSV of the crawl's items (shop, url, title, price, currency, ...), "
            "or a Google Merchant Center feed (RSS/Atom XML with g: fields, or its TSV). "
            "Running a file again updates its offers, never duplicates them."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="feed files (.gz too)")
    add_index_option(parser)
    parser.add_argument("--shop", help="shop of every offer (default: the row's, or URL host)")
    parser.add_argument(
        "--allow-missing-price",
        action="store_true",
        help="keep offers without a price (price unknown; grouped, never the cheapest)",
    )
    parser.add_argument("--format", choices=FORMATS, help="feed format (default: detected)")
    parser.add_argument(
        "--images", metavar="DIR", help="where photos are stored (default: INDEX/images)"
    )
    parser.add_argument(
        "--no-images", action="store_true", help="do not fetch photos (text vectors only)"
    )
    add_model_arguments(parser)
    parser.add_argument("--workers", type=int, default=4, help="photo and OCR threads (4)")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per model call (32)")
    parser.add_argument(
        "--progress-every", type=int, default=1000, help="rows between progress lines (1000)"
    )
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> IngestOptions:
    """The one `IngestOptions` of a command line."""
    from cumpair.ingest.runner import IngestOptions

    return IngestOptions(
        shop=args.shop,
        allow_missing_price=args.allow_missing_price,
        fmt=args.format,
        images_dir=Path(args.images) if args.images else None,
        fetch_images=not args.no_images,
        ocr=not args.no_ocr,
        workers=args.workers,
        batch_size=args.batch_size,
        progress_every=args.progress_every,
    )


def run(args: argparse.Namespace) -> int:
    from cumpair.embed.base import EmbedError
    from cumpair.index import StoreError
    from cumpair.ingest.formats import FeedError
    from cumpair.ingest.runner import ingest

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        print(f"cumpair ingest: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"cumpair ingest: {exc}", file=sys.stderr)
        return 2
    try:
        report = ingest(args.files, args.index, options, encoders=lambda: load_index_encoders(args))
    except FeedError as exc:
        print(f"cumpair ingest: {exc}", file=sys.stderr)
        return 2
    except (StoreError, EmbedError) as exc:
        print(f"cumpair ingest: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    if report.stored:
        from cumpair.alerts.run import after_update

        after_update(args.index)  # price-drop watches on what was just stored
    return 0 if report.stored or not report.rows else 1


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """`--no-ocr` and `--encoders`: the models the crawl's stages run, for `cumpair ingest` and
    `cumpair indexer` alike (`load_index_encoders` reads `--encoders`)."""
    from cumpair.embed.registry import KINDS

    parser.add_argument("--no-ocr", action="store_true", help="do not read specs from photos")
    parser.add_argument("--encoders", choices=KINDS, default="auto", help="encoder kind (auto)")


def load_index_encoders(args: argparse.Namespace) -> EncoderSet:
    """The `--encoders` kind, with its models under the store at `--index`."""
    from cumpair.embed.registry import load_encoders

    return load_encoders(
        args.encoders,
        model_dir=Path(args.index) / "models",  # as the crawl's default (INDEX_DATA_DIR/models)
        threads=1,  # a throughput job: BatchEmbedder runs one single-threaded batch per core
    )
