"""The `cumpair` command's options and output: help on every action, `--index` for the store
directory everywhere (`--path` kept), `index stats` leading with a summary, and progress bars
that show on a terminal only."""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import sys
from decimal import Decimal

import numpy as np
import pytest

from cumpair.cli import _COMMANDS, build_full_parser, build_parser
from cumpair.cli import main as cumpair_main
from cumpair.demo.catalog import build_catalog
from cumpair.index import OfferRecord, ProductStore, SpaceSpec, StoreOptions
from cumpair.progress import progress, working
from cumpair.search.demo_index import index_demo_offers
from cumpair.search.products import ProductGroups
from cumpair.search.store_scan import scan_offers

DIM = 8
SPACES = {"image": SpaceSpec(DIM, "test-image", "1")}


def _actions(parser: argparse.ArgumentParser, name: str):
    """(command path, action) for every action of `parser` and its sub-commands."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # the sub-command's own line in --help
                yield f"{name} {choice.dest}", choice
            for sub_name, sub in action.choices.items():
                yield from _actions(sub, f"{name} {sub_name}")
        else:
            yield name, action


def _command_params():
    for command in sorted(_COMMANDS):
        yield pytest.param(command, id=command)


@pytest.mark.parametrize("command", list(_command_params()))
def test_every_sub_command_and_option_has_help(command):
    parser = build_parser([command])
    missing = [
        f"{where}: {'/'.join(action.option_strings) or action.dest}"
        for where, action in _actions(parser, "cumpair")
        if where.split()[1:2] == [command] and not action.help
    ]
    assert missing == []


def test_the_store_directory_is_called_index_everywhere():
    """Wherever a store directory is taken it is `--index` (dest `index`); `--path` only as its
    old name beside it."""
    seen = []
    for where, action in _actions(build_full_parser(), "cumpair"):
        if isinstance(action, argparse._SubParsersAction._ChoicesPseudoAction):
            continue  # a sub-command's line, not an option
        names = set(action.option_strings)
        assert action.dest != "path" and "--store" not in names, where
        if "--path" in names or action.dest == "index":
            assert {"--index", "--path"} <= names and action.dest == "index", where
            seen.append(where)
    takes_a_store = {
        "index stats", "index check", "index save", "index compact", "index optimize",
        "index recover", "reindex", "ingest", "indexer", "search", "history", "products",
        "serve", "watch add", "watch list", "watch remove", "watch check",
    }  # fmt: skip
    assert {w.removeprefix("cumpair ") for w in seen} == takes_a_store


@pytest.mark.parametrize("option", ["--index", "--path"])
@pytest.mark.parametrize(
    "argv",
    [["index", "stats"], ["reindex"], ["ingest", "feed.jl"], ["indexer", "--redis", "redis://x"]],
    ids=lambda argv: argv[0] if isinstance(argv, list) else argv,
)
def test_either_name_sets_the_store_directory(argv, option):
    args = build_parser(argv).parse_args([*argv, option, "/some/store"])
    assert args.index == "/some/store"


# ------------------------------------------------------------------ index stats
@pytest.fixture
def demo_store(tmp_path):
    """Demo offers of four shops, grouped into products, without vectors."""
    path = tmp_path / "demo"
    store = ProductStore.open(path, {}, StoreOptions(duplicate_threshold=None))
    with ProductGroups.open(path) as groups:
        index_demo_offers(store, groups, build_catalog(n_products=4, seed=2).offers)
    store.close()
    return path


def _vector_store(path, n: int, *, crash: bool = False) -> None:
    """`n` offers with image vectors, flushed on close; `crash`: the process dies before the
    close instead (the upserts are committed, no snapshot holds them)."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    store = ProductStore.open(path, SPACES, StoreOptions(duplicate_threshold=None))
    store.upsert_many(
        (OfferRecord("ab"[i % 2], f"http://s/{i}", price=Decimal(i + 1)), {"image": v})
        for i, v in enumerate(vectors)
    )
    if crash:
        os._exit(0)
    store.close()


def test_index_stats_leads_with_offers_shops_products_and_health(demo_store, capsys):
    assert cumpair_main(["index", "stats", "--index", str(demo_store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"store:      {demo_store}")
    text = "\n".join(out)
    assert "offers:     13 from 4 shops (bluepeak 4, cornerstore 3, nebula 3, northwind 3)" in text
    assert "products:   4 (13 offers grouped)" in text
    assert "vectors:    no vector spaces" in text and "health:     ok" in text
    assert "{" not in text  # no raw report dumped under the summary


def test_index_stats_json_is_the_whole_report(demo_store, capsys):
    assert cumpair_main(["index", "stats", "--path", str(demo_store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["offers"] == 13 and "damage" in report and "files" in report
    assert report["shops"] == {"bluepeak": 4, "cornerstore": 3, "nebula": 3, "northwind": 3}
    assert report["products"] == {"products": 4, "offers_grouped": 13}


def test_index_stats_names_vectors_per_space_last_flush_and_damage(tmp_path, capsys):
    path = tmp_path / "s"
    _vector_store(path, 12)  # closing flushes: one snapshot
    crashed = multiprocessing.get_context("fork").Process(
        target=_vector_store, args=(path, 14), kwargs={"crash": True}
    )  # two offers more, in the vector log only
    crashed.start()
    crashed.join()
    log = next(path.glob("vectors.image.*.vlog"))
    os.truncate(log, log.stat().st_size - 2)  # the last committed row is torn
    assert cumpair_main(["index", "stats", "--index", str(path)]) == 0
    text = capsys.readouterr().out
    assert "vectors:    13 image (flat, 8-d test-image)" in text
    assert "offers:     14 from 2 shops (a 7, b 7)" in text
    assert "products:   not grouped yet" in text
    assert "last flush: never" not in text and "last flush: 20" in text
    assert "health:     2 problem(s)" in text
    assert "1 damaged vectors in 'image'" in text
    assert "1 committed rows missing from 'image''s vector log" in text


def test_index_errors_go_to_stderr_with_status_1(tmp_path, capsys):
    assert cumpair_main(["index", "stats", "--index", str(tmp_path / "none")]) == 1
    captured = capsys.readouterr()
    assert "no product store" in captured.err and captured.out == ""


# ------------------------------------------------------------------ progress bars
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bars_show_on_a_terminal_only(monkeypatch, terminal):
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert sum(progress(range(5), desc="reindex", unit="offer")) == 10
    with working("index optimize"):
        pass
    written = stream.getvalue()
    assert ("reindex" in written and "/5 " in written and "index optimize" in written) == terminal
    assert written or not terminal


def test_a_regroup_shows_its_pairs_on_a_terminal(demo_store, monkeypatch):
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    with ProductStore.open(demo_store, readonly=True) as store:
        records = scan_offers(store)
    with ProductGroups.open(demo_store) as groups:
        assert groups.regroup(records) == (4, 13)
    assert "regroup" in stream.getvalue() and "pair" in stream.getvalue()


def test_index_optimize_shows_its_bar_on_a_terminal(tmp_path, monkeypatch, capsys):
    path = tmp_path / "s"
    _vector_store(path, 4)
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    assert cumpair_main(["index", "optimize", "--index", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"image": "IDMap2,Flat"}
    assert "index optimize" in stream.getvalue()
