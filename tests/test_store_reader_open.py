"""Readers of a store they cannot read get a clear refusal, and the search CLI says it plainly."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from cumpair.index import OfferRecord, ProductStore, SpaceSpec, StoreError, StoreOptions
from cumpair.search.cli import main_search

SPACES = {"text": SpaceSpec(8, "test-text", "1")}


@pytest.fixture
def store_dir(tmp_path):
    path = tmp_path / "index"
    vector = np.ones(8, dtype=np.float32) / np.sqrt(8)
    with ProductStore.open(path, SPACES, StoreOptions(duplicate_threshold=None)) as store:
        store.upsert(OfferRecord("a", "http://a/1", title="drill"), {"text": vector})
    return path


def test_a_reader_refuses_a_schema_newer_than_its_code(store_dir):
    with sqlite3.connect(store_dir / "meta.sqlite") as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match=r"schema 99, newer than this code.*newer Cumpair"):
        ProductStore.open(store_dir, readonly=True)


def test_the_search_cli_names_a_missing_vector_log_without_a_traceback(store_dir):
    for log in store_dir.glob("vectors.text.*.vlog"):
        log.unlink()
    with pytest.raises(SystemExit) as exit_:
        # A text query: a GTIN lookup opens no vector space, so it never reads the log.
        main_search(["--index", str(store_dir), "--text", "drill"])
    message = str(exit_.value.code)
    assert message.startswith(f"cumpair: cannot open the index at {store_dir}")
    assert "vectors.text." in message and "cumpair index check" in message
