"""The `cumpair` console command: one entry point for operator tasks.

Each sub-command lives beside the library it drives (`cumpair/<part>/cli.py`, exposing
`add_parser(subparsers)` which registers the sub-command and sets `func`); this module only
collects them, importing each lazily so `cumpair demo` never pays for loading torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys

# sub-command name -> module that registers it
_COMMANDS: dict[str, str] = {
    "demo": "cumpair.demo.cli",
    "specs": "cumpair.vision.cli",
    "index": "cumpair.index.cli",
    "reindex": "cumpair.embed.cli",
    "search": "cumpair.search.cli",
    "history": "cumpair.search.cli",
    "serve": "cumpair.search.cli",
    "match": "cumpair.search.match_cli",
    "matcher": "cumpair.search.match_cli",
    "products": "cumpair.search.cli",
    "ingest": "cumpair.ingest.cli",
    "indexer": "cumpair.indexer.cli",
    "extract": "cumpair_scraper.extract_cli",
    "watch": "cumpair.alerts.cli",
}


def _version() -> str:
    try:
        return importlib.metadata.version("cumpair")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser, importing only the module of the sub-command being run."""
    parser = argparse.ArgumentParser(prog="cumpair", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cumpair {_version()}")
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log messages at this level and above go to stderr (INFO)",
    )  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((arg for arg in argv if not arg.startswith("-")), None)
    modules = [_COMMANDS[wanted]] if wanted in _COMMANDS else sorted(set(_COMMANDS.values()))
    for module_name in modules:
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
