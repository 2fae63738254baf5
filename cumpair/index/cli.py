"""``cumpair index``: inspect and maintain a product store (stats, check, save, compact, optimize,
recover).

`stats` and `check` open the store read-only, so they work while a crawl is writing; the
maintenance commands take the writer lock and fail clearly (on stderr, exit status 1) when a
crawl holds it. `check` exits with status 1 when it finds damage, `recover` handles a store whose
database is gone. `stats` leads with a summary a person reads at a glance; ``--json`` prints the
whole report (the store's `health()` plus the shops, products and last snapshot).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from cumpair.cli_options import add_index_option
from cumpair.index.records import StoreError
from cumpair.progress import progress, working

_READONLY = ("stats", "check")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="inspect and maintain the FAISS product store")
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("stats", "summary, health and statistics (read-only; safe during a crawl)"),
        ("check", "verify every vector row and snapshot checksum (read-only; exit 1 on damage)"),
        ("save", "force a flush of every space"),
        ("compact", "flush, drop removed ids, vacuum the metadata database"),
        (
            "optimize",
            "upgrade/re-train spaces that outgrew their index, re-tune near-neighbour searches"
            " of one that lacks only that (index kept), then flush",
        ),
        ("recover", "meta.sqlite is gone: keep the data files aside with an inventory"),
    ):
        sub = actions.add_parser(name, help=help_text)
        add_index_option(sub)
        sub.add_argument("--json", action="store_true", help="print the whole report as JSON")
        sub.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cumpair.index.store import ProductStore, recover  # faiss loads only when it runs

    status = 0
    command = args.index_command
    try:
        if command == "recover":
            result: Any = recover(args.index)
        else:
            readonly = command in _READONLY
            with ProductStore.open(args.index, readonly=readonly) as store:
                if command == "stats":
                    result = stats_report(store)
                elif command == "check":
                    result = store.check()
                    status = 0 if result["ok"] else 1
                elif command == "save":
                    result = {"files_written": store.flush()}
                elif command == "compact":
                    with working("index compact"):
                        result = store.compact()
                else:
                    result = _optimize_with_progress(store)
    except StoreError as exc:
        print(f"cumpair index {command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(summary(result) if command == "stats" else _text(result))
    return status


def _optimize_with_progress(store: Any) -> dict[str, str]:
    """`optimize` with a bar of the rows each space's build has added, then tuned over."""
    with progress(desc="index optimize", unit="rows") as bar:
        shown = [""]

        def report(space: str, phase: str, done: int, total: int) -> None:
            label = f"index optimize {space}: {phase}"
            if label != shown[0]:
                shown[0] = label
                bar.reset(total=total)
                bar.set_description(label, refresh=False)
            bar.n = done
            bar.refresh()

        return store.optimize(report)


def stats_report(store: Any) -> dict[str, Any]:
    """The store's `health()` plus what a person asks first: shops, products, last snapshot."""
    from cumpair.index import metadata
    from cumpair.index.products import ProductTables
    from cumpair.index.store import DB_NAME

    report = store.health()
    path = Path(store.path)
    with contextlib.closing(metadata.connect(path / DB_NAME, readonly=True)) as conn:
        shops = dict(conn.execute("SELECT shop, COUNT(*) FROM offers GROUP BY shop ORDER BY shop"))
        made = [
            s[0].created_at for name in report["spaces"] if (s := metadata.snapshots(conn, name))
        ]
    report["shops"] = shops
    report["last_snapshot_at"] = max(made) if made else None
    with contextlib.closing(ProductTables.open(path, readonly=True)) as tables:
        products, grouped = tables.count()
    # None: no grouping yet (a crawl, an ingest or `search --regroup` makes it)
    report["products"] = {"products": products, "offers_grouped": grouped} if products else None
    from cumpair.vision.cache import cache_stats

    cache = cache_stats(path)
    report["vision_cache"] = cache.to_dict() if cache else None
    return report


def summary(report: dict[str, Any]) -> str:
    """A few lines for a person: counts, vectors per space, last flush, then every problem."""
    shops = report["shops"]
    products = report["products"]
    lines = [
        f"store:      {report['path']} (schema {report['schema_version']}, "
        f"generation {report['generation']})",
        f"offers:     {report['offers']} from {len(shops)} shop{'s' * (len(shops) != 1)}"
        + (f" ({', '.join(f'{s} {n}' for s, n in shops.items())})" if shops else "")
        + f"; {report['price_points']} price points",
        "products:   "
        + (
            f"{products['products']} ({products['offers_grouped']} offers grouped)"
            if products
            else "not grouped yet (crawl, ingest or `cumpair search --regroup`)"
        ),
    ]
    spaces = report["spaces"]
    lines.append(
        "vectors:    "
        + (", ".join(_space_line(name, s) for name, s in spaces.items()) or "no vector spaces")
    )
    flushed = report["last_flush_at"] or report["last_snapshot_at"]
    pending = sum(s["pending_unflushed"] for s in spaces.values())
    lines.append(
        f"last flush: {_when(flushed) if flushed else 'never'}"
        + (f"; {pending} changes since (replayed from SQLite on open)" if pending else "")
    )
    lines.append(f"disk:       {_size(report['disk_bytes'])} in {len(report['files'])} files")
    cache = report.get("vision_cache")
    lines.append(
        f"vision cache: {cache['entries']} entries, {_size(cache['bytes'])} of "
        f"{_size(cache['max_bytes']) if cache['max_bytes'] else 'unbounded'}"
        if cache
        else "vision cache: none yet (a crawl makes it)"
    )
    problems = health_problems(report)
    lines.append("health:     " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    lines.extend(f"  - {problem}" for problem in problems)
    if problems:
        lines.append("  (`cumpair index check` verifies every row; --json shows the details)")
    return "\n".join(lines)


def health_problems(report: dict[str, Any]) -> list[str]:
    """What is wrong, one sentence each, from the report's ``damage`` and its spaces."""
    damage = report["damage"]
    problems = [
        f"{len(ids)}{'+' * (len(ids) >= 100)} damaged vectors in {space!r}"
        for space, ids in damage["damaged_vector_ids"].items()
    ]
    problems += [
        f"{rows} committed rows missing from {space!r}'s vector log"
        for space, rows in damage["log_rows_missing"].items()
    ]
    if damage["lost_and_found"]:
        problems.append(f"{len(damage['lost_and_found'])} files kept aside in lost+found/")
    check = damage["last_check"]
    if check is not None and not check["ok"]:
        problems.append(f"the last `index check` ({_when(check['at'])}) found damage")
    problems += [
        f"{space!r} failed to upgrade its index: {s['upgrade_error']}"
        for space, s in report["spaces"].items()
        if s["upgrade_error"]
    ]
    if damage["found"] and not problems:  # a kind of damage this summary does not know yet
        problems.append("damage found (see --json)")
    return problems


def _space_line(name: str, space: dict[str, Any]) -> str:
    from cumpair.index.ivf import IndexParams

    state = ", upgrading" if space["upgrading"] else ""
    params = IndexParams.from_dict(space["index"])
    layout = "" if params.kind == "flat" else f"; {params.describe()}"
    return (
        f"{space['vectors']} {name} ({space['index_type']}{state}, {space['dim']}-d "
        f"{space['encoder']}{layout})"
    )


def _when(iso: str) -> str:
    """An ISO timestamp as a person reads it, in local time to the second."""
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(iso)
        if moment.tzinfo is not None:
            moment = moment.astimezone()
        return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return iso


def _size(n: float) -> str:
    units = ("B", "KB", "MB", "GB", "TB")
    step = 0
    while n >= 1024 and step < len(units) - 1:
        n, step = n / 1024, step + 1
    return f"{n:.0f} B" if step == 0 else f"{n:.1f} {units[step]}"


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
