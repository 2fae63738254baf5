"""``cumpair reindex``: rebuild a product store's vectors with the current encoders.

Thin over `cumpair.embed.reindex.reindex`; models and FAISS load only when the command runs, and
a store a crawl is writing is refused before any model loads.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from cumpair.cli_options import add_index_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from cumpair.embed.registry import KINDS

    parser = subparsers.add_parser(
        "reindex",
        help="re-embed a product store with the current encoders (keeps records and prices)",
        description=(
            "Re-embed every offer's stored photos and text with the current encoders into a new "
            "store, keeping records and price history, regroup products, then swap the new "
            "store in (the old one is kept as <index>.old-<timestamp>) unless --out is given. "
            "A progress bar shows on a terminal."
        ),
    )
    add_index_option(parser)
    parser.add_argument(
        "--out", metavar="DIR", help="write the new store here and leave --index untouched"
    )
    parser.add_argument("--encoders", choices=KINDS, default="auto", help="encoder kind (auto)")
    parser.add_argument("--clip-model", default=None, help="open_clip model name")
    parser.add_argument(
        "--clip-pretrained", default=None, help="open_clip pretrained tag or checkpoint file"
    )
    parser.add_argument(
        "--clip-model-config", metavar="JSON", help="register a custom open_clip architecture"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per model call (32)")
    parser.add_argument(
        "--images", metavar="DIR", help="where relative photo paths live (default: INDEX/images)"
    )
    parser.add_argument(
        "--if-stale",
        action="store_true",
        help="only when the store was embedded by other encoders (or versions); no store is fine",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cumpair.embed.base import EmbedError
    from cumpair.embed.reindex import reindex
    from cumpair.index import StoreError

    if args.batch_size < 1:
        print("cumpair reindex: --batch-size must be at least 1", file=sys.stderr)
        return 2
    try:
        encoders = functools.partial(_load_encoders, args)  # loaded once the lock is held
        if args.if_stale:
            from cumpair.index import recorded_spaces

            recorded = recorded_spaces(args.index)
            if recorded:  # an absent store needs no models (loading them writes INDEX/models)
                encoders = _load_encoders(args)
            stale = _stale_spaces(recorded, encoders) if recorded else []
            if not stale:
                print(f"cumpair reindex: {args.index} is up to date (or absent); nothing to do")
                return 0
            print(f"cumpair reindex: {args.index} has stale spaces: {', '.join(stale)}")
        report = reindex(
            args.index,
            encoders,
            out=args.out,
            images_root=args.images,
            batch_size=args.batch_size,
        )
    except (StoreError, EmbedError) as exc:
        print(f"cumpair reindex: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _stale_spaces(recorded: dict, encoders) -> list[str]:
    """Spaces of `recorded` (the store's) that another encoder than `encoders` wrote."""
    from cumpair.embed.reindex import spaces_for

    wanted = spaces_for(encoders)
    return sorted(name for name, spec in recorded.items() if wanted.get(name) != spec)


def _load_encoders(args: argparse.Namespace):
    from cumpair.embed.clip import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
    from cumpair.embed.registry import load_encoders

    return load_encoders(
        args.encoders,
        clip_model=args.clip_model or DEFAULT_CLIP_MODEL,
        clip_pretrained=args.clip_pretrained or DEFAULT_CLIP_PRETRAINED,
        clip_model_config=args.clip_model_config,
        model_dir=Path(args.index) / "models",  # as the crawl's default (INDEX_DATA_DIR/models)
        threads=1,  # a throughput job: BatchEmbedder runs one single-threaded batch per core
    )
