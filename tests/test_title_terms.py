"""The store's title-term index (`cumpair.index.title_terms`): the neighbours it finds are the
TF-IDF ones a full regroup computes, it follows upserts, title changes and removals, survives a
reopen, and an older store fills it on its next writable open (resuming after a kill)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cumpair.index import OfferRecord, ProductStore, StoreOptions, metadata, title_terms
from cumpair.search.features import clean_text
from tests.real_data import wdc_titles

TITLES = [
    "Acme Kettle KT-200 steel 1.7 L",
    "ACME KT-200 kettle, 1.7l",
    "Acme steel kettle KT200",
    "Zeta Toaster TS-4 black",
    "Zeta TS-4 toaster, 4 slices black",
    "Nikon D3400 camera body",
    "Nikon D3400 + AF-P 18-55mm kit",
    "Canon EOS 2000D body",
    "ASICS Tiger GEL-Kayano Trainer Evo - White Mens Shoes HN6A0-0101",
    "ASICS Tiger GEL-Kayano Trainer Evo - Wit Heren Schoenen",
    "Wit Heren Schoenen",
    "null",
]


def _open(path: Path) -> ProductStore:
    return ProductStore.open(path, {}, StoreOptions(duplicate_threshold=None))


def _fill(store: ProductStore, titles: list[str]) -> list[int]:
    items = [
        (OfferRecord(shop=f"shop{n}", url=f"http://s{n}/p", title=t, price=10 + n), {})
        for n, t in enumerate(titles)
    ]
    return [r.offer_id for r in store.upsert_many(items)]


def _exact(titles: dict[int, str], k: int, characters: bool) -> dict[int, set[int]]:
    """Each offer's `k` nearest titles by scikit-learn's TF-IDF over all of them, exact."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    ids = sorted(titles)
    grams = {"analyzer": "char_wb", "ngram_range": (3, 3)} if characters else {}
    vectorizer = TfidfVectorizer(sublinear_tf=True, **grams)
    matrix = vectorizer.fit_transform([clean_text(titles[i]) for i in ids])
    sims = (matrix @ matrix.T).toarray()
    np.fill_diagonal(sims, 0.0)
    out: dict[int, set[int]] = {}
    for row, oid in enumerate(ids):
        order = sorted(range(len(ids)), key=lambda j: (-sims[row, j], ids[j]))
        out[oid] = {ids[j] for j in order[:k] if sims[row, j] > 0}
    return out


def _expected(titles: dict[int, str], k: int, characters: bool) -> dict[int, set[int]]:
    # symmetric, as a full regroup's pairs: j on i's list puts i on j's
    found = _exact(titles, k, characters)
    out = {oid: set(near) for oid, near in found.items()}
    for oid, near in found.items():
        for other in near:
            out[other].add(oid)
    return {oid: near for oid, near in out.items() if near}


def _found(store: ProductStore, ids: list[int], k: int, characters: bool):
    words, grams = (0, k) if characters else (k, 0)
    return store.title_neighbours(ids, words, grams)


def _titles(store: ProductStore) -> dict[int, str]:
    return {r.id: r.title for batch in store.iter_offers() for r in batch}


@pytest.mark.parametrize("characters", [False, True])
def test_the_index_finds_the_exact_tfidf_neighbours_through_upserts_changes_and_removals(
    tmp_path, characters, monkeypatch
):
    # every term probed, every posting read, every partial match rescored: the exact search
    monkeypatch.setattr(title_terms, "PROBE_TERMS", 10**6)
    monkeypatch.setattr(title_terms, "SHORTLIST", 10**6)
    store = _open(tmp_path)
    ids = _fill(store, TITLES)
    assert _found(store, ids, 3, characters) == _expected(_titles(store), 3, characters)
    # a title changes (same shop and URL), one offer goes, one comes
    store.upsert(OfferRecord(shop="shop5", url="http://s5/p", title="Zeta toaster TS-4 grey"))
    assert store.remove(ids[3])
    ids.append(
        store.upsert(OfferRecord(shop="new", url="http://n/p", title="Nikon D3400")).offer_id
    )
    live = [i for i in ids if i != ids[3]]
    assert _found(store, live, 3, characters) == _expected(_titles(store), 3, characters)
    assert ids[3] not in {o for near in _found(store, live, 3, characters).values() for o in near}
    store.close()
    with _open(tmp_path) as again:  # survives a reopen
        assert _found(again, live, 3, characters) == _expected(_titles(again), 3, characters)


def test_the_index_after_changes_is_the_index_built_from_scratch(tmp_path):
    with _open(tmp_path / "a") as store:
        ids = _fill(store, TITLES)
        store.upsert(OfferRecord(shop="shop0", url="http://s0/p", title="Acme KT-300 kettle"))
        store.remove(ids[4])
        final = [t for n, t in enumerate(TITLES) if n != 4]
        final[0] = "Acme KT-300 kettle"
    with _open(tmp_path / "b") as store:
        _fill(store, final)

    def terms(path):
        conn = sqlite3.connect(path / metadata.DB_NAME)
        rows = conn.execute(
            "SELECT kind, term, df FROM title_terms WHERE df > 0 ORDER BY kind, term"
        ).fetchall()
        docs = conn.execute("SELECT value FROM state WHERE key = 'title_docs'").fetchone()
        postings = conn.execute("SELECT count(*) FROM title_postings").fetchone()
        conn.close()
        return rows, docs, postings

    assert terms(tmp_path / "a") == terms(tmp_path / "b")


def test_terms_are_those_of_grouping_tfidf_on_real_titles():
    from sklearn.feature_extraction.text import TfidfVectorizer

    titles = wdc_titles(3000) + TITLES + ['Shoe "@en "null" a b c', "x"]
    word = TfidfVectorizer().build_analyzer()
    gram = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3)).build_analyzer()
    for title in titles:
        cleaned = clean_text(title)
        assert title_terms.clean_title(title) == cleaned
        words, grams = title_terms.title_terms(title)
        assert sorted(words.elements()) == sorted(word(cleaned))
        assert sorted(grams.elements()) == sorted(gram(cleaned))


def _as_schema_5(path: Path) -> None:
    """What a store written before the title index looks like: no tables, schema 5."""
    conn = sqlite3.connect(path / metadata.DB_NAME)
    for table in ("title_terms", "title_docs", "title_postings"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DELETE FROM state WHERE key IN ('title_docs', 'title_backfill')")
    conn.execute("PRAGMA user_version=5")
    conn.commit()
    conn.close()


def test_a_migrated_store_fills_its_index_and_finds_the_same_neighbours(tmp_path, monkeypatch):
    titles = wdc_titles(600) + TITLES
    with _open(tmp_path) as store:
        ids = _fill(store, titles)
        before = store.title_neighbours(ids, 5, 5)
    _as_schema_5(tmp_path)
    with ProductStore.open(tmp_path, readonly=True) as reader:  # migrated, not filled yet
        assert reader.title_neighbours(ids, 5, 5) is None
    # killed after the first chunk: the next open resumes after it
    real, calls = title_terms.index_titles, []

    def dies_second(conn, offer_ids):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(conn, offer_ids)

    monkeypatch.setattr(title_terms, "BACKFILL_CHUNK", 200)
    monkeypatch.setattr(title_terms.backfill, "__defaults__", (200,))
    monkeypatch.setattr(title_terms, "index_titles", dies_second)
    with pytest.raises(KeyboardInterrupt):
        _open(tmp_path)
    conn = sqlite3.connect(tmp_path / metadata.DB_NAME)
    assert conn.execute("SELECT value FROM state WHERE key = 'title_backfill'").fetchone()[0] > 0
    conn.close()
    monkeypatch.setattr(title_terms, "index_titles", real)
    with _open(tmp_path) as store:
        assert store.title_neighbours(ids, 5, 5) == before


def test_a_look_up_reads_one_snapshot_while_a_writer_removes_a_neighbour(tmp_path, monkeypatch):
    # the writer removes the query's neighbour between the look-up's postings read and its
    # documents read: the answer is that of the store before the removal, whole
    with _open(tmp_path) as store:
        ids = _fill(store, TITLES)
        before = store.title_neighbours([ids[0]], 3, 0)
        assert ids[1] in before[ids[0]]
        real, calls = title_terms._shortlist, []

        def removes_after_reading(*args, **kwargs):
            got = real(*args, **kwargs)
            if not calls:
                calls.append(store.remove(ids[1]))
            return got

        monkeypatch.setattr(title_terms, "_shortlist", removes_after_reading)
        assert store.title_neighbours([ids[0]], 3, 0) == before
        assert calls == [True]
        monkeypatch.setattr(title_terms, "_shortlist", real)
        assert ids[1] not in store.title_neighbours([ids[0]], 3, 0)[ids[0]]


def test_terms_no_title_has_any_more_are_deleted(tmp_path):
    with _open(tmp_path) as store:
        ids = _fill(store, TITLES)
        extra = store.upsert(OfferRecord(shop="shopx", url="http://x/p", title="Quuxbrand Zorp"))
        store.upsert(OfferRecord(shop="shop0", url="http://s0/p", title="Florbix gadget"))
        store.remove(extra.offer_id)
        conn = sqlite3.connect(tmp_path / metadata.DB_NAME)
        terms = {t for (t,) in conn.execute("SELECT term FROM title_terms")}
        zero = conn.execute("SELECT count(*) FROM title_terms WHERE df <= 0").fetchone()[0]
        conn.close()
    assert zero == 0
    assert {"kt", "200", "florbix"} <= terms  # words titles still hold
    assert not {"quuxbrand", "zorp", "uux", "zor"} & terms  # the removed title's own
    assert not {"acme", "kettle"} - terms and len(ids) == len(TITLES)


def test_the_backfill_logs_its_progress_per_chunk(tmp_path, monkeypatch, caplog):
    titles = wdc_titles(500)
    with _open(tmp_path) as store:
        _fill(store, titles)
    _as_schema_5(tmp_path)
    monkeypatch.setattr(title_terms.backfill, "__defaults__", (200,))
    with caplog.at_level("INFO", logger="cumpair.index.title_terms"), _open(tmp_path):
        pass
    progress = [r.getMessage() for r in caplog.records if "backfill" in r.getMessage()]
    assert [m.split(":")[1].split()[0] for m in progress] == ["200", "400", str(len(titles))]


def test_a_look_up_reads_each_probed_terms_postings_once(tmp_path, monkeypatch):
    # touched offers share their rare terms (here the kettles' "acme", "kt"): the second query
    # takes the list the first read; with one list kept (each read again) the neighbours agree
    with _open(tmp_path) as store:
        ids = _fill(store, TITLES)
        real, reads = title_terms._postings, []

        def counted(conn, term, kept):
            reads.append((term, term in kept))
            return real(conn, term, kept)

        monkeypatch.setattr(title_terms, "_postings", counted)
        found = store.title_neighbours(ids, 3, 3)
        from_sql = [term for term, kept in reads if not kept]
        assert len(from_sql) == len(set(from_sql)) < len(reads)
        monkeypatch.setattr(title_terms, "POSTINGS_KEPT", 1)
        assert store.title_neighbours(ids, 3, 3) == found
