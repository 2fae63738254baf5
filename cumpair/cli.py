"""The `cumpair` console command: one entry point for operator tasks.

Each sub-command lives beside the library it drives (`cumpair/<part>/cli.py`, exposing
`add_parser(subparsers)` which registers the sub-command and sets `func`); this module only
names them (`_COMMANDS`) and imports the module of the command being run, so `cumpair --help`
answers without loading FAISS, Scrapy or the encoders, and `cumpair demo` never loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys
from typing import NamedTuple


class Command(NamedTuple):
    """Where a sub-command lives, and its line in `cumpair --help` (the module's own help)."""

    module: str
    help: str


# sub-command name -> the module that registers it, and its one-line help
_COMMANDS: dict[str, Command] = {
    "demo": Command("cumpair.demo.cli", "the bundled demo shops"),
    "specs": Command("cumpair.vision.cli", "extract product specifications from text or images"),
    "index": Command("cumpair.index.cli", "inspect and maintain the FAISS product store"),
    "reindex": Command(
        "cumpair.embed.cli",
        "re-embed a product store with the current encoders (keeps records and prices)",
    ),
    "search": Command("cumpair.search.cli", "find a product by photo, text or GTIN"),
    "history": Command("cumpair.search.cli", "price history of a product or offer URL"),
    "serve": Command("cumpair.search.cli", "the comparison page and its JSON API"),
    "match": Command("cumpair.search.match_cli", "are two offers (JSON files) the same product?"),
    "matcher": Command("cumpair.search.match_cli", "train the learned matcher"),
    "products": Command("cumpair.search.cli", "every product with its offers (export)"),
    "ingest": Command(
        "cumpair.ingest.cli", "load offers from feed files into the index (as a crawl would)"
    ),
    "indexer": Command(
        "cumpair.indexer.cli",
        "index the items that crawls in Redis mode hand over (one per store)",
    ),
    "extract": Command("cumpair_scraper.extract_cli", "the item the crawl would yield for a page"),
    "watch": Command("cumpair.alerts.cli", "price-drop alerts: add, list, remove, check"),
    "rates": Command("cumpair.search.rates_cli", "currency rate file: fetch the ECB's, show one"),
}


def _version() -> str:
    try:
        return importlib.metadata.version("cumpair")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="cumpair", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cumpair {_version()}")
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log messages at this level and above go to stderr (INFO)",
    )  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    return parser, subparsers


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser, importing only the module of the sub-command named in `argv`.

    The other commands are listed from `_COMMANDS` without importing theirs, so with no
    command named (`cumpair --help`, `--version`, nothing at all) no module is imported and
    argparse prints the listing, or says a command is required.
    """
    parser, subparsers = _top_parser()
    # The first known command name: top-level option values (the --log-level levels) never
    # collide with one, and whatever follows the command is the command's own.
    wanted = next((arg for arg in argv if arg in _COMMANDS), None)
    if wanted is not None:
        importlib.import_module(_COMMANDS[wanted].module).add_parser(subparsers)
    for name, command in _COMMANDS.items():
        if name not in subparsers.choices:  # listed (and a valid choice), not loaded
            subparsers.add_parser(name, help=command.help)
    return parser


def build_full_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command's own options: imports every module (slow), for
    tools and tests that walk the whole command line."""
    parser, subparsers = _top_parser()
    for module_name in dict.fromkeys(command.module for command in _COMMANDS.values()):
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    # Configured here, once, for every sub-command (a later basicConfig call is a no-op).
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
