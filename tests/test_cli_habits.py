"""The `cumpair` command's habits: a version, exit status 1 for what is not found (2 only for
usage), and the store directory named `--index` everywhere with `--path` kept as an alias."""

from __future__ import annotations

import pytest

from cumpair.cli import main as cumpair_main
from cumpair.demo.catalog import build_catalog
from cumpair.index import ProductStore, StoreOptions
from cumpair.search.demo_index import index_demo_offers
from cumpair.search.products import ProductGroups


@pytest.fixture
def store_dir(tmp_path):
    store = ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(tmp_path)
    index_demo_offers(store, groups, build_catalog(n_products=4, seed=2).offers)
    groups.close()
    store.close()
    return tmp_path


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as stop:
        cumpair_main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("cumpair ")


@pytest.mark.parametrize("option", ["--index", "--path"])
def test_not_found_is_status_1_on_stderr_under_either_option_name(store_dir, capsys, option):
    assert cumpair_main(["history", option, str(store_dir), "999999"]) == 1
    captured = capsys.readouterr()
    assert "no product or offer URL" in captured.err and captured.out == ""
    assert cumpair_main(["watch", "list", option, str(store_dir)]) == 0


def test_a_missing_query_is_a_usage_error(store_dir, capsys):
    assert cumpair_main(["search", "--index", str(store_dir)]) == 2
    assert "give --image, --text or --gtin" in capsys.readouterr().err


def test_logging_is_configured_once_for_every_sub_command(store_dir, monkeypatch):
    import logging

    calls = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: calls.append(kw))
    assert cumpair_main(["--log-level", "WARNING", "watch", "list", "--index", str(store_dir)]) == 0
    assert [c["level"] for c in calls] == ["WARNING"]
