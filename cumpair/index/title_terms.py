"""The store's title-term index: each offer's title words and within-word character trigrams
(as grouping's TF-IDF reads a cleaned title), their document frequencies, and per term its
offers by weight, so a regroup finds a touched offer's nearest titles by probing its rarest
terms instead of reading every title (`title_neighbours`).

Owns the tables ``title_terms``, ``title_docs`` and ``title_postings`` of ``meta.sqlite``
(schema 6). Writes happen only inside the caller's transaction (the store's upsert and remove),
so the index commits, or rolls back, with its offers; `backfill` fills a migrated store in
committed chunks and resumes where a kill left it. It never decides a match.

What it costs: an upsert indexes the titles that are new or changed (a recrawl of the same
titles costs nothing measurable). At 10^5 extended WDC titles upserted 2000 at a time, 0.58
CPU ms an offer (0.03 without it; 0.93 before the batch was indexed column-wise, same run,
load 11-16; 0.51 against 0.024 on a rerun), most of it SQLite's B-tree inserts of ~78
postings an offer (~2 us a row by ``executemany``: the floor of one row a posting); 2.8 ms
one at a time (0.2 without), and
~3 KB of ``meta.sqlite`` an offer (10^5: 300 MB); the backfill runs under the writer lock at
about the same CPU an offer and logs each committed chunk. A look-up is bounded by
`PROBE_TERMS` x `PROBE_POSTINGS`, not flat (bench/bench_trigram_neighbours.py --regroup).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

WORDS, GRAMS = 0, 1  # a term's kind: a word, or a character trigram within a word
#: Tables and state of schema 6; the backfill cursor is the last offer id indexed (-1: done).
SCHEMA = """
CREATE TABLE title_terms (
    id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, term TEXT NOT NULL, df INTEGER NOT NULL,
    UNIQUE (kind, term));
CREATE TABLE title_docs (
    offer_id INTEGER PRIMARY KEY, title_crc INTEGER NOT NULL, terms BLOB NOT NULL);
CREATE TABLE title_postings (
    term_id INTEGER NOT NULL, impact INTEGER NOT NULL, offer_id INTEGER NOT NULL,
    PRIMARY KEY (term_id, impact, offer_id)) WITHOUT ROWID;
INSERT INTO state VALUES ('title_docs', 0), ('title_backfill', 0)
"""
#: A posting's impact is its term's share of the offer's title, the sublinear TF weight over
#: the title's L2 norm of them (IDF left out: it is the term's, the same along its postings,
#: and applied when probed with today's counts), times this, negated: a term's postings read in
#: key order are its heaviest first. It depends on the title alone, so the index of a store is
#: the same whatever order its offers came in (a backfilled store's too).
IMPACT_SCALE = 10_000
#: Rarest terms a title probes per kind (as `candidates._probed_neighbours`), the postings
#: read per probed term (its heaviest: titles where the term weighs most), and how many best
#: partial scores per neighbour wanted are rescored exactly. Probes x postings bound the work
#: of one title whatever the store's size. The shortlist was chosen on 5000 WDC train titles
#: (300 queried, 20 neighbours, recall of the exact TF-IDF top 20): trigrams 0.894 with 4,
#: 0.921 with 8 (the full-read probed search: 0.907) for 1.1x the CPU; words 0.999 / 1.000.
#: The postings on 10^5 titles extended from the real ones (bench_trigram_neighbours.py, 100
#: queried; share of the full-read search's neighbours kept, CPU ms per title): words 100 /
#: 200 / 400 / 1000 postings 0.898 / 0.946 / 0.971 / 0.996 at 4.7 / 5.7 / 7.6 / 13.5 ms,
#: trigrams 0.838 / 0.910 / 0.948 / 0.972 at 7.2 / 9.2 / 13.4 / 17.5 ms (12 probes of 1000:
#: 0.942); below 10^4 titles few lists are that long and none of it matters.
PROBE_TERMS = 24
PROBE_POSTINGS = 1000
SHORTLIST = 8
#: Probed terms whose postings one look-up keeps once read (at most 16 KB each, so 32 MB):
#: the offers a crawl touches share their rarest terms (a product's offers, a brand's line), and
#: reading a term's list again was what grew with the store (the lists lengthen up to
#: `PROBE_POSTINGS`): bench/bench_grouping.py, 10^5 offers, 1,000 touched, 29,960 list reads.
#: Real titles touched at random share few rare terms: there it gains nothing measurable
#: (bench_trigram_neighbours.py --regroup, 10^5, 100 touched: 13.8-16.0 CPU ms each before,
#: 13.1-15.7 after, alternating runs at load 7-13; the same neighbours).
POSTINGS_KEPT = 2048
BACKFILL_CHUNK = 2000

# features.clean_text's debris (language tags, "Null" fields, quotes); the index package
# imports nothing from search, so they are repeated here (a test holds the two equal).
_LANG_TAG = re.compile(r'"@[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?')
_NULL = re.compile(r'"null"|\bnull\b', re.IGNORECASE)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern


def clean_title(text: str | None) -> str:
    """A title as grouping reads it (`features.clean_text`): no export debris, one space."""
    text = _LANG_TAG.sub(" ", text or "")
    text = _NULL.sub(" ", text).replace('"', " ")
    return " ".join(text.split())


def title_terms(title: str | None) -> tuple[Counter[str], Counter[str]]:
    """Counts of a title's words and of its character trigrams within words, as scikit-learn's
    ``TfidfVectorizer`` (default words; ``analyzer="char_wb", ngram_range=(3, 3)``) finds them
    in the cleaned, lower-cased title."""
    text = clean_title(title).lower()
    words = Counter(_TOKEN.findall(text))
    grams: Counter[str] = Counter()
    for word in text.split():
        padded = f" {word} "
        if len(padded) <= 3:
            grams[padded] += 1
            continue
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return words, grams


def idf(n: int, df: np.ndarray) -> np.ndarray:
    """scikit-learn's smooth IDF over `n` titles."""
    return np.log((1.0 + n) / (1.0 + df)) + 1.0


def _weights(tf: np.ndarray, df: np.ndarray, n: int) -> np.ndarray:
    """L2-normalised sublinear TF-IDF weights of one title's terms of one kind."""
    w = (1.0 + np.log(tf)) * idf(n, df)
    norm = float(np.sqrt((w * w).sum()))
    return w / norm if norm > 0 else w


def is_complete(conn: sqlite3.Connection) -> bool:
    """True once every offer's title is indexed (the backfill of a migrated store is done)."""
    row = conn.execute("SELECT value FROM state WHERE key = 'title_backfill'").fetchone()
    return row is not None and int(row[0]) < 0


def index_titles(conn: sqlite3.Connection, offer_ids: Iterable[int]) -> None:
    """(Re)index the titles the offers `offer_ids` hold now (read from ``offers``; a title that
    has not changed is left as it is). Runs in the caller's transaction.

    A batch is indexed column-wise: its terms in one flat array (one Python pass over the
    titles' terms to count them and one to map them to ids), the weights and document counts
    by NumPy over the whole batch, and each table written by one ``executemany`` in key order.
    """
    ids = sorted({int(i) for i in offer_ids})
    if not ids:
        return
    titles = dict(_select_in(conn, "SELECT id, title FROM offers WHERE id IN ({})", ids))
    known = dict(
        _select_in(conn, "SELECT offer_id, title_crc FROM title_docs WHERE offer_id IN ({})", ids)
    )
    crcs = {oid: zlib.crc32((titles[oid] or "").encode()) for oid in titles}
    stale = [oid for oid in known if oid not in titles or known[oid] != crcs.get(oid)]
    drop_titles(conn, stale)
    fresh = [oid for oid in ids if oid in titles and (oid in stale or oid not in known)]
    if not fresh:
        return
    # per term of each title (its words, then its trigrams, each in order of first sight):
    # its text, kind and count; `sizes`: how many terms each (title, kind) has
    texts: list[str] = []
    tfs: list[int] = []
    sizes: list[int] = []
    for oid in fresh:
        for counts in title_terms(titles[oid]):
            texts += counts
            tfs += counts.values()
            sizes.append(len(counts))
    size = np.array(sizes, dtype=np.int64)
    kind = np.tile(np.array([WORDS, GRAMS]), len(fresh)).repeat(size)
    tf = np.array(tfs, dtype=np.int64)
    term_ids = _term_ids(conn, set(zip(kind.tolist(), texts, strict=True)))
    tid = np.fromiter(
        map(term_ids.__getitem__, zip(kind.tolist(), texts, strict=True)), np.int64, len(texts)
    )
    oid = np.array(fresh, dtype=np.int64).repeat(size.reshape(-1, 2).sum(axis=1))
    # a term's impact: its sublinear TF over the L2 norm of those of its title's terms of its
    # kind (IDF left out, see IMPACT_SCALE), the same as `_weights` with every df 0
    group = np.arange(len(size)).repeat(size)
    w = 1.0 + np.log(tf)
    w = w / np.sqrt(np.bincount(group, weights=w * w, minlength=len(size)))[group]
    impact = -np.maximum(np.rint(w * IMPACT_SCALE), 1).astype(np.int64)
    counted, increments = np.unique(tid, return_counts=True)  # in key order: pages once
    conn.executemany(
        "UPDATE title_terms SET df = df + ? WHERE id = ?",
        zip(increments.tolist(), counted.tolist(), strict=True),
    )
    n = _state(conn, "title_docs") + len(fresh)
    conn.execute("UPDATE state SET value = ? WHERE key = 'title_docs'", (n,))
    terms = np.stack([tid, kind, tf, impact], 1).astype(np.int32)
    ends = np.cumsum(size.reshape(-1, 2).sum(axis=1)).tolist()
    conn.executemany(
        "INSERT INTO title_docs VALUES (?, ?, ?)",
        (
            (o, crcs[o], terms[lo:hi].tobytes())
            for o, lo, hi in zip(fresh, [0, *ends[:-1]], ends, strict=True)
        ),
    )
    order = np.lexsort((oid, impact, tid))
    conn.executemany(
        "INSERT INTO title_postings VALUES (?, ?, ?)",
        zip(tid[order].tolist(), impact[order].tolist(), oid[order].tolist(), strict=True),
    )


def drop_titles(conn: sqlite3.Connection, offer_ids: Iterable[int]) -> None:
    """Take the offers' titles out of the index (in the caller's transaction)."""
    ids = sorted({int(i) for i in offer_ids})
    docs = _docs(conn, ids)
    if not docs:
        return
    postings, decrements = [], Counter()
    for oid, terms in docs.items():
        decrements.update(terms[:, 0].tolist())
        postings.append(np.stack([terms[:, 0], terms[:, 3], np.full(len(terms), oid)], 1))
    conn.executemany(
        "DELETE FROM title_postings WHERE term_id = ? AND impact = ? AND offer_id = ?",
        _key_order(postings),
    )
    conn.executemany(
        "UPDATE title_terms SET df = df - ? WHERE id = ?",
        [(decrements[t], t) for t in sorted(decrements)],
    )
    # a term no title has any more is forgotten (else a word of every changed or removed title
    # ever seen stays in the table); a title that brings it back adds it anew
    for chunk in _chunks(sorted(decrements)):
        conn.execute(
            f"DELETE FROM title_terms WHERE df <= 0 AND id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
    for chunk in _chunks(list(docs)):
        conn.execute(
            f"DELETE FROM title_docs WHERE offer_id IN ({','.join('?' * len(chunk))})", chunk
        )
    n = _state(conn, "title_docs") - len(docs)
    conn.execute("UPDATE state SET value = ? WHERE key = 'title_docs'", (n,))


def _key_order(postings: list[np.ndarray]) -> list[list[int]]:
    """(term id, impact, offer id) rows in the postings' key order, so a batch writes each
    B-tree page once instead of jumping between them."""
    rows = np.concatenate(postings).astype(np.int64)
    return rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))].tolist()


def backfill(conn: sqlite3.Connection, chunk: int = BACKFILL_CHUNK) -> int:
    """Index the titles of a migrated store's offers, `chunk` offers a committed transaction
    (a kill resumes after the last one); the offers indexed. `conn` is outside a transaction."""
    done = 0
    while not is_complete(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            after = _state(conn, "title_backfill")
            ids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT id FROM offers WHERE id > ? ORDER BY id LIMIT ?", (after, chunk)
                )
            ]
            index_titles(conn, ids)
            cursor = ids[-1] if len(ids) == chunk else -1
            last = ids[-1] if ids else after
            conn.execute("UPDATE state SET value = ? WHERE key = 'title_backfill'", (cursor,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done += len(ids)
        # a migrated 10^6 store takes minutes under the writer lock: say how far it is
        log.info("title-term index backfill: %d offers indexed (up to offer id %d)", done, last)
    return done


def title_neighbours(
    conn: sqlite3.Connection, offer_ids: Sequence[int], words: int, grams: int
) -> dict[int, set[int]]:
    """Offer id of each of `offer_ids` -> the ids of its `words` nearest titles by words and
    `grams` by character trigrams (TF-IDF cosine, as grouping's full regroup fits it on every
    title), found by prefix filtering: each title probes the `PROBE_TERMS` rarest of its terms
    of a kind, reads each one's `PROBE_POSTINGS` heaviest postings, and the `SHORTLIST`·k best
    by that partial score are rescored exactly with today's document frequencies. The work per
    title follows the probes, not the store. Symmetric as a full regroup's pairs: a queried
    offer found by another queried one has it as a neighbour too.

    Read in one transaction of `conn` (the caller's, or one of its own): every read sees one
    snapshot, so a write committed meanwhile cannot pair the postings of one state of the store
    with the documents and counts of another."""
    if conn.in_transaction:
        return _neighbours(conn, offer_ids, words, grams)
    conn.execute("BEGIN")
    try:
        return _neighbours(conn, offer_ids, words, grams)
    finally:
        conn.execute("COMMIT")


def _neighbours(
    conn: sqlite3.Connection, offer_ids: Sequence[int], words: int, grams: int
) -> dict[int, set[int]]:
    """`title_neighbours` within the caller's snapshot."""
    queries = _docs(conn, offer_ids)
    n = _state(conn, "title_docs")
    if not queries or n < 2:
        return {}
    found: dict[int, set[int]] = {oid: set() for oid in queries}
    asked = np.unique(np.concatenate([t[:, 0] for t in queries.values()])).tolist()
    df = _dfs(conn, asked)
    texts = dict(_select_in(conn, "SELECT id, term FROM title_terms WHERE id IN ({})", asked))
    postings: dict[int, np.ndarray] = {}  # `_postings`' reads, shared by every query
    for kind, k in ((WORDS, words), (GRAMS, grams)):
        if k <= 0:
            continue
        heads, tails = [], []
        for oid, terms in queries.items():
            mine = terms[terms[:, 1] == kind]
            shortlist = _shortlist(conn, oid, mine, df, texts, n, SHORTLIST * k, postings)
            heads.append(np.full(len(shortlist), oid))
            tails.append(shortlist)
        head, tail = np.concatenate(heads), np.concatenate(tails)
        if not len(head):
            continue
        others = _docs(conn, np.unique(tail).tolist())
        if not others:  # removed since their postings were read
            continue
        terms = np.unique(np.concatenate([o[:, 0] for o in others.values()])).tolist()
        df.update(_dfs(conn, set(terms) - df.keys()))
        have = np.array([int(t) in others for t in tail.tolist()], dtype=bool)
        head, tail = head[have], tail[have]
        rows, matrix = _tfidf({**others, **queries}, kind, df, n)
        exact = np.asarray(
            matrix[_rows(rows, head)].multiply(matrix[_rows(rows, tail)]).sum(axis=1)
        ).ravel()
        order = np.lexsort((tail, -exact, head))  # per query its best first, ties by id
        head, tail, exact = head[order], tail[order], exact[order]
        first = np.searchsorted(head, head, side="left")
        best = (np.arange(len(head)) - first < k) & (exact > 0)
        for a, b in zip(head[best].tolist(), tail[best].tolist(), strict=True):
            found[a].add(b)
            if b in found:
                found[b].add(a)
    return {oid: near for oid, near in found.items() if near}


def _shortlist(
    conn: sqlite3.Connection,
    oid: int,
    mine: np.ndarray,
    df: Mapping[int, int],
    texts: Mapping[int, str],
    n: int,
    size: int,
    postings: dict[int, np.ndarray],
) -> np.ndarray:
    """The `size` offers with the best partial scores over the probed postings of one title's
    terms of one kind (`mine`: rows of its doc), itself left out; `postings`: the lists read so
    far in this snapshot (`_postings`)."""
    if not len(mine):
        return np.empty(0, dtype=np.int64)
    tids = mine[:, 0].astype(np.int64)
    dfs = _lookup(df, tids)
    # the query's TF-IDF weight times the term's IDF: the posting's impact then stands for the
    # other title's TF-IDF weight, up to its norm
    w = _weights(mine[:, 2].astype(np.float64), dfs, n) * idf(n, dfs)
    # rarest first, ties by the term itself (its id follows the order titles came in)
    order = sorted(range(len(tids)), key=lambda i: (dfs[i], texts[int(tids[i])]))[:PROBE_TERMS]
    others, scores = [], []
    for t, q in zip(tids[order].tolist(), w[order].tolist(), strict=True):
        got = _postings(conn, t, postings)
        if len(got):
            others.append(got[:, 0])
            scores.append(got[:, 1] * -q)
    if not others:
        return np.empty(0, dtype=np.int64)
    ids, at = np.unique(np.concatenate(others), return_inverse=True)
    partial = np.bincount(at, weights=np.concatenate(scores), minlength=len(ids))
    partial[ids == oid] = -np.inf
    keep = min(size, len(ids))
    best = np.argpartition(-partial, keep - 1)[:keep]
    return ids[best[np.isfinite(partial[best])]]


def _postings(conn: sqlite3.Connection, term: int, kept: dict[int, np.ndarray]) -> np.ndarray:
    """Rows (offer id, impact) of the `PROBE_POSTINGS` heaviest postings of `term`, read once
    per look-up: `kept` holds the last `POSTINGS_KEPT` terms read, oldest out first."""
    got = kept.get(term)
    if got is None:
        rows = conn.execute(
            "SELECT offer_id, impact FROM title_postings WHERE term_id = ? ORDER BY impact LIMIT ?",
            (term, PROBE_POSTINGS),
        ).fetchall()
        got = np.array(rows, dtype=np.int64).reshape(-1, 2)
        if len(kept) >= POSTINGS_KEPT:
            del kept[next(iter(kept))]
        kept[term] = got
    return got


def _lookup(df: Mapping[int, int], tids: np.ndarray) -> np.ndarray:
    return np.array([df.get(t, 0) for t in tids.tolist()], dtype=np.float64)


def _tfidf(
    docs: Mapping[int, np.ndarray], kind: int, df: Mapping[int, int], n: int
) -> tuple[np.ndarray, Any]:
    """The offer id of each row, and the docs' L2-normalised TF-IDF rows of one kind (CSR
    over term ids), with today's document frequencies."""
    from scipy import sparse

    ids = list(docs)
    parts = [docs[oid][docs[oid][:, 1] == kind] for oid in ids]
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    terms = np.concatenate(parts) if parts else np.empty((0, 4), dtype=np.int32)
    columns, inverse = np.unique(terms[:, 0].astype(np.int64), return_inverse=True)
    owner = np.repeat(np.arange(len(ids)), sizes)
    w = (1.0 + np.log(terms[:, 2].astype(np.float64))) * idf(n, _lookup(df, columns))[inverse]
    norms = np.sqrt(np.bincount(owner, weights=w * w, minlength=len(ids)))
    w = w / np.where(norms > 0, norms, 1.0)[owner]
    matrix = sparse.csr_matrix((w, (owner, inverse)), shape=(len(ids), max(len(columns), 1)))
    return np.array(ids, dtype=np.int64), matrix


def _rows(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The rows of `wanted` offer ids in `_tfidf`'s matrix (whose rows are `ids`)."""
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids[order], wanted)]


def _docs(conn: sqlite3.Connection, offer_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """Offer id -> its indexed terms, rows of (term id, kind, tf, impact)."""
    return {
        int(oid): np.frombuffer(blob, dtype=np.int32).reshape(-1, 4)
        for oid, blob in _select_in(
            conn,
            "SELECT offer_id, terms FROM title_docs WHERE offer_id IN ({})",
            sorted({int(i) for i in offer_ids}),
        )
    }


def _dfs(conn: sqlite3.Connection, term_ids: Iterable[int]) -> dict[int, int]:
    return {
        int(t): int(d)
        for t, d in _select_in(
            conn, "SELECT id, df FROM title_terms WHERE id IN ({})", sorted(term_ids)
        )
    }


def _term_ids(conn: sqlite3.Connection, wanted: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The ids of terms (kind, text), adding the new ones (df 0)."""
    out: dict[tuple[int, str], int] = {}
    for kind in (WORDS, GRAMS):
        texts = sorted(t for k, t in wanted if k == kind)
        _read_term_ids(conn, kind, texts, out)
        new = [t for t in texts if (kind, t) not in out]
        if new:
            conn.executemany(
                "INSERT INTO title_terms (kind, term, df) VALUES (?, ?, 0)",
                [(kind, t) for t in new],
            )
            _read_term_ids(conn, kind, new, out)
    return out


def _read_term_ids(
    conn: sqlite3.Connection, kind: int, texts: list[str], out: dict[tuple[int, str], int]
) -> None:
    """Add to `out` the ids of the stored terms of `kind` among `texts`."""
    query = "SELECT id, term FROM title_terms WHERE kind = ? AND term IN ({})"
    for tid, term in _select_in(conn, query, texts, first=(kind,)):
        out[kind, term] = int(tid)


def _state(conn: sqlite3.Connection, key: str) -> int:
    return int(conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()[0])


def _select_in(
    conn: sqlite3.Connection, query: str, values: list, first: tuple = ()
) -> Iterable[tuple]:
    """The rows of `query` with its ``IN ({})`` over `values`, in chunks under SQLite's limit on
    parameters; `first`: the parameters bound before the list."""
    for chunk in _chunks(values):
        yield from conn.execute(query.format(",".join("?" * len(chunk))), (*first, *chunk))


def _chunks(values: list, size: int = 900) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
