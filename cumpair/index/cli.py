"""``cumpair index``: inspect and maintain a product store (stats, check, save, compact, optimize,
recover).

`stats` and `check` open the store read-only, so they work while a crawl is writing; the
maintenance commands take the writer lock and fail clearly when a crawl holds it. `check` exits
with status 1 when it finds damage, `recover` handles a store whose database is gone.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cumpair.index.records import StoreError

_READONLY = ("stats", "check")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="inspect and maintain the FAISS product store")
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("stats", "health and statistics (read-only; safe during a crawl)"),
        ("check", "verify every vector row and snapshot checksum (read-only; exit 1 on damage)"),
        ("save", "force a flush of every space"),
        ("compact", "flush, drop removed ids, vacuum the metadata database"),
        ("optimize", "upgrade/re-train spaces that outgrew their index, then flush"),
        ("recover", "meta.sqlite is gone: keep the data files aside with an inventory"),
    ):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("--path", default="index_data", help="store directory (index_data)")
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        sub.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cumpair.index.store import ProductStore, recover  # faiss loads only when it runs

    status = 0
    try:
        if args.index_command == "recover":
            result: Any = recover(args.path)
        else:
            readonly = args.index_command in _READONLY
            with ProductStore.open(args.path, readonly=readonly) as store:
                if args.index_command == "stats":
                    result = store.health()
                elif args.index_command == "check":
                    result = store.check()
                    status = 0 if result["ok"] else 1
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
    return status


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
