"""``cumpair index``: inspect and maintain a product store (stats, save, compact, optimize).

`stats` opens the store read-only, so it works while a crawl is writing; the maintenance
commands take the writer lock and fail clearly when a crawl holds it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cumpair.index.records import StoreError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="inspect and maintain the FAISS product store")
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("stats", "health and statistics (read-only; safe during a crawl)"),
        ("save", "force a flush of every space"),
        ("compact", "flush, drop removed ids, vacuum the metadata database"),
        ("optimize", "upgrade/re-train spaces that outgrew their index, then flush"),
    ):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("--path", default="index_data", help="store directory (index_data)")
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        sub.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cumpair.index.store import ProductStore  # faiss loads only when the command runs

    readonly = args.index_command == "stats"
    try:
        with ProductStore.open(args.path, readonly=readonly) as store:
            if args.index_command == "stats":
                result: Any = store.health()
            elif args.index_command == "save":
                result = {"files_written": store.flush()}
            elif args.index_command == "compact":
                result = store.compact()
            else:
                result = store.optimize()
    except StoreError as exc:
        print(f"cumpair index {args.index_command}: {exc}")
        return 1
    print(json.dumps(result, indent=2, default=str) if args.json else _text(result))
    return 0


def _text(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict) and item:
                lines.append(f"{pad}{key}:")
                lines.append(_text(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {item}")
        return "\n".join(lines)
    return f"{pad}{value}"
