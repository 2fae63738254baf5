"""``cumpair indexer``: the one process that writes a store fed by crawls in Redis mode.

Thin over `cumpair.indexer.worker.Indexer`: the flags become one `IndexerOptions`
(`options_from_args`). SIGTERM and Ctrl-C finish the batch in hand, regroup and close the store;
SIGKILL loses nothing either (unacknowledged entries are read again first, offers not yet
regrouped are regrouped by the next run). Exit status 1 when the store cannot be opened (another
writer holds it), Redis cannot be reached, the image store cannot be read or a vision worker
process died; 2 for bad flags.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from cumpair.cli_options import add_index_option
from cumpair.ingest.cli import add_model_arguments, load_index_encoders

if TYPE_CHECKING:
    from cumpair.indexer.worker import IndexerOptions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from cumpair.indexer.stream import DEFAULT_KEY

    parser = subparsers.add_parser(
        "indexer",
        help="index the items that crawls in Redis mode hand over (one per store)",
        description=(
            "Read items from the Redis stream that `scrapy crawl -s CRAWL_REDIS_URL=...` "
            "writes, read their specs, embed them and upsert them into the store at --index; "
            "each item is acknowledged once the store holds it."
        ),
    )
    add_index_option(parser)
    parser.add_argument("--redis", required=True, metavar="URL", help="redis://host:port/db")
    parser.add_argument(
        "--stream", default=DEFAULT_KEY, help=f"stream key, the crawl's CRAWL_REDIS_ITEMS_KEY "
        f"({DEFAULT_KEY})"
    )  # fmt: skip
    parser.add_argument(
        "--images",
        metavar="URI",
        help="the crawl's IMAGES_STORE as reached from here: a directory, file://, s3://, gs:// "
        "or ftp:// (default: INDEX/images); credentials and endpoints from the environment "
        "under Scrapy's names (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, FTP_USER, ...)",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--workers", type=int, default=2, help="threads reading photos (and OCR without processes)"
    )
    parser.add_argument(
        "--vision-processes",
        type=int,
        metavar="N",
        help="worker processes reading specs off photos; 0 runs them on the threads "
        "(default: half the cores from 4 cores on, else 0)",
    )
    parser.add_argument(
        "--no-alerts",
        action="store_true",
        help="do not check price watches after each regroup (else with the CUMPAIR_ALERTS_* "
        "options from the environment)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="entries per batch (32)")
    parser.add_argument(
        "--spool",
        metavar="PATH",
        help="the spool of crawls without Redis sharing this store, indexed when the stream is "
        "quiet (their INDEX_SPOOL_PATH; default: INDEX/spool/offers.sqlite)",
    )
    parser.add_argument(
        "--regroup-idle",
        type=float,
        default=2.0,
        metavar="S",
        help="regroup and flush once the stream has been quiet S seconds (2)",
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="S",
        help="stop once the stream has been empty S seconds (default: run until stopped)",
    )
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> IndexerOptions:
    """The one `IndexerOptions` of a command line."""
    from cumpair.indexer.vision import default_vision_processes
    from cumpair.indexer.worker import IndexerOptions
    from cumpair.stored_images import ImageStoreOptions

    processes = args.vision_processes
    return IndexerOptions(
        vision_processes=default_vision_processes() if processes is None else processes,
        alerts=not args.no_alerts,
        images=args.images,
        image_store=ImageStoreOptions.from_settings(os.environ),
        ocr=not args.no_ocr,
        workers=args.workers,
        batch=args.batch_size,
        regroup_idle_s=args.regroup_idle,
        exit_when_idle_s=args.exit_when_idle,
        spool=Path(args.spool) if args.spool else None,
    )


def run(args: argparse.Namespace) -> int:
    from concurrent.futures.process import BrokenProcessPool

    import redis

    from cumpair.embed.base import EmbedError
    from cumpair.faiss_threads import SETTING as FAISS_THREADS_SETTING
    from cumpair.faiss_threads import search_threads, set_faiss_threads
    from cumpair.index import StoreError
    from cumpair.indexer.stream import ItemStream
    from cumpair.indexer.worker import Indexer
    from cumpair.stored_images import ImageStoreError

    try:
        options = options_from_args(args)
        stream = ItemStream.from_url(args.redis, args.stream)
        # one offer searched at a time (near-duplicates, grouping): see cumpair.faiss_threads
        set_faiss_threads(search_threads(os.environ.get(FAISS_THREADS_SETTING), 1))
    except ValueError as exc:
        print(f"cumpair indexer: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stream.client.ping()
        report = Indexer(args.index, stream, load_index_encoders(args), options).run(stop)
    except redis.RedisError as exc:
        print(f"cumpair indexer: Redis at {args.redis}: {exc}", file=sys.stderr)
        return 1
    except (StoreError, EmbedError, ImageStoreError, BrokenProcessPool) as exc:
        print(f"cumpair indexer: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
