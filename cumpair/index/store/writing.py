"""Upserts and duplicate detection: offer rows, vector log rows and index changes of one
transaction (same URL, same GTIN, or a near-identical vector of the same shop is one offer).

A batch is written column-wise, with no SQLite round trip per offer: validated into one matrix
per space, looked up with one query per 900 keys, written with ``executemany``, its changed
vectors appended to each space's log in one write (and one fsync under ``synchronous=FULL``),
near-duplicates found with one FAISS search.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import repeat

import faiss
import numpy as np

from cumpair.index import metadata, title_terms
from cumpair.index.records import (
    MAX_VECTORS_PER_OFFER,
    ORDINAL_BITS,
    OfferRecord,
    UpsertResult,
    vector_id,
)
from cumpair.index.store.base import StoreBase, _Ops
from cumpair.index.store.validation import SpaceBatch

_DUPLICATE_CANDIDATES = 8


@dataclass(frozen=True)
class _Batch:
    """A validated batch: per item its column values and ISO sighting time; vectors by space."""

    rows: list[metadata.OfferRow]
    seen: list[str]
    spaces: dict[str, SpaceBatch]
    keys: list[tuple[str, str]]  # (shop, url) per item


class Writing(StoreBase):
    """Upserts and duplicate detection (a part of `ProductStore`)."""

    def upsert(
        self, offer: OfferRecord, vectors: Mapping[str, np.ndarray] | None = None
    ) -> UpsertResult:
        """Add or update one offer and its vectors (per space: ``(n, d)`` images or ``(d,)``).

        Duplicates update the existing offer instead of adding one, in this order:
        same shop+URL; same GTIN in the same shop (the URL is updated to the new one); a vector
        in ``duplicate_space`` whose cosine with the offer's first vector there is at least
        ``duplicate_threshold`` and that belongs to an offer of the *same shop* whose GTIN does
        not contradict this one and whose first vectors in the offer's other spaces (its text)
        are as close (the existing URL is kept). Every call appends a price-history
        row. Vectors given for a space replace the offer's vectors there (unchanged ones are not
        re-indexed); spaces left out keep theirs. Durable when it returns.
        """
        return self.upsert_many([(offer, vectors or {})])[0]

    def upsert_many(
        self, items: Iterable[tuple[OfferRecord, Mapping[str, np.ndarray]]]
    ) -> list[UpsertResult]:
        """`upsert` for a batch in one transaction, with batched SQL (bulk loads: use this).

        Results are those of upserting the items one by one, in order, except that
        near-duplicate detection only sees vectors indexed before the batch. Offers without
        ``seen_at`` are all seen at the same moment. A bad item raises before anything is
        written.
        """
        self._require_writer()
        items = list(items)
        rows, seen = self._check_offers([offer for offer, _ in items])
        spaces = self._check_batch_vectors([vectors for _, vectors in items])
        if not rows:
            return []
        batch = _Batch(rows, seen, spaces, [(r.shop, r.url) for r in rows])
        runs = _Runs(batch)
        with self._write_lock:
            ops: dict[str, _Ops] = {name: _Ops() for name in self._spaces}
            results: list[UpsertResult] = []
            with self._transaction():
                seq = metadata.state(self._conn, "seq") + 1
                while len(results) < len(rows):
                    start = len(results)
                    results += self._upsert_chunk(batch, start, runs.end(start), seq, ops)
                metadata.set_state(self._conn, "seq", seq)
            self._apply(ops, seq)
        self._schedule_upgrades()
        return results

    def _upsert_chunk(
        self, batch: _Batch, lo: int, hi: int, seq: int, ops: dict[str, _Ops]
    ) -> list[UpsertResult]:
        """Upsert items ``lo:hi`` (distinct URLs and GTINs); stops early before two hit one
        offer (the rest waits for this part to land)."""
        conn = self._conn
        rows, seen = batch.rows[lo:hi], batch.seen[lo:hi]
        keys = batch.keys[lo:hi]
        by_url = metadata.offers_by_url(conn, keys)
        found: list[int | None] = [by_url.get(k) for k in keys] if by_url else [None] * len(rows)
        matched = ["new" if f is None else "url" for f in found]
        with_gtin = [
            (r.shop, r.gtin) for r, f in zip(rows, found, strict=True) if f is None and r.gtin
        ]
        if by_gtin := metadata.offers_by_gtin(conn, with_gtin) if with_gtin else {}:
            for n, r in enumerate(rows):
                if found[n] is None and r.gtin and (r.shop, r.gtin) in by_gtin:
                    found[n], matched[n] = by_gtin[(r.shop, r.gtin)], "gtin"
        unmatched = [n for n, f in enumerate(found) if f is None]
        for n, offer_id in zip(unmatched, self._find_duplicates(batch, lo, unmatched), strict=True):
            if offer_id is not None:
                found[n], matched[n] = offer_id, "vector"
        taken: set[int] = set()
        if any(f is not None for f in found):
            for end, offer_id in enumerate(found):
                if offer_id is not None and offer_id in taken:
                    hi, rows, seen = lo + end, rows[:end], seen[:end]
                    found, matched = found[:end], matched[:end]
                    break
                if offer_id is not None:
                    taken.add(offer_id)
        next_id = metadata.next_offer_id(conn)
        if taken:
            prices = metadata.current_prices(conn, taken)
            inserts, updates, changed = [], [], []
            for n, (row, offer_id) in enumerate(zip(rows, found, strict=True)):
                if offer_id is None:
                    found[n], next_id = next_id, next_id + 1
                    inserts.append((found[n], row, seen[n]))
                    changed.append(False)
                else:
                    updates.append((offer_id, row, seen[n], matched[n] != "gtin"))
                    old, new = prices[offer_id], (row.price, row.currency)
                    changed.append(old != new and _price_key(old) != _price_key(new))
            metadata.insert_offers(conn, inserts)
            metadata.update_offers(conn, updates)
        else:  # every item is a new offer
            found = list(range(next_id, next_id + len(rows)))
            metadata.insert_offers(conn, list(zip(found, rows, seen, strict=True)))
            changed = [False] * len(rows)
        offer_ids: list[int] = found  # type: ignore[assignment]  # every item has one now
        metadata.append_prices(conn, list(zip(offer_ids, rows, seen, strict=True)))
        title_terms.index_titles(conn, offer_ids)  # the titles these offers hold now
        ids = np.array(offer_ids, dtype=np.int64)
        existed = np.array([m != "new" for m in matched], dtype=bool)
        added = np.zeros(len(rows), dtype=np.int64)
        removed = np.zeros(len(rows), dtype=np.int64)
        for name, space_batch in batch.spaces.items():
            self._write_vectors(
                name, space_batch, lo, hi, ids, existed, seq, ops[name], added, removed
            )
        columns = (offer_ids, matched, changed, added.tolist(), removed.tolist())
        return list(map(UpsertResult._make, zip(*columns, strict=True)))

    def _write_vectors(
        self,
        name: str,
        given: SpaceBatch,
        lo: int,
        hi: int,
        offer_ids: np.ndarray,
        existed: np.ndarray,
        seq: int,
        space_ops: _Ops,
        added: np.ndarray,
        removed: np.ndarray,
    ) -> None:
        """Append the changed vectors of items ``lo:hi`` in one space to its log, then their
        rows; drop the ordinals an item no longer has. Counts go to `added` and `removed`."""
        if not given.given[lo:hi].any():
            return
        conn = self._conn
        offsets = given.offsets[lo : hi + 1]
        first, counts = int(offsets[0]), offsets[1:] - offsets[:-1]
        matrix = given.matrix[first : int(offsets[-1])]
        owner = np.arange(hi - lo).repeat(counts)  # the item of each vector
        ordinals = np.arange(len(matrix)) - (offsets[:-1] - first)[owner]
        vids = (offer_ids[owner] << ORDINAL_BITS) | ordinals
        file, committed = metadata.vector_log(conn, name)
        vectors_log = self._vector_log(file, self._spaces[name].spec.dim)
        kept = np.zeros(len(matrix), dtype=bool)  # unchanged: not written again
        replaced = np.empty(0, dtype=np.int64)
        updating = (given.given[lo:hi] & existed).nonzero()[0].tolist()
        old_rows = metadata.offer_vector_rows(conn, name, offer_ids[updating].tolist())
        at, log_rows, gone = [], [], []
        if old_rows:
            ids, sizes, starts = (
                offer_ids.tolist(),
                counts.tolist(),
                (offsets[:-1] - first).tolist(),
            )
            for j in updating:
                for ordinal, row in old_rows.get(ids[j], {}).items():
                    if ordinal < sizes[j]:
                        at.append(starts[j] + ordinal)
                        log_rows.append(row)
                    else:
                        gone.append(vector_id(ids[j], ordinal))
                        removed[j] += 1
        if at:  # a damaged old row never equals the new vector, so it gets rewritten
            at_ = np.array(at, dtype=np.int64)
            old = vectors_log.read(np.array(log_rows, dtype=np.int64), vids[at_])
            same = old.ok & (old.vectors == matrix[at_]).all(axis=1)
            kept[at_[same]] = True
            replaced = vids[at_[~same]]
        if gone:
            metadata.drop_vectors(conn, name, gone, seq)
            space_ops.drop.update(gone)
            for vid in gone:
                space_ops.add.pop(vid, None)
        new = (~kept).nonzero()[0]
        if not len(new):
            return
        added += np.bincount(owner[new], minlength=hi - lo)
        values = matrix if len(new) == len(matrix) else matrix[new]
        new_vids = vids[new]
        vectors_log.write(committed, new_vids, values)
        if self.options.synchronous == "FULL":
            vectors_log.sync()
        vid_list = new_vids.tolist()
        metadata.put_vectors(
            conn,
            list(
                zip(
                    repeat(name),
                    vid_list,
                    offer_ids[owner[new]].tolist(),
                    ordinals[new].tolist(),
                    repeat(seq),
                    range(committed, committed + len(new)),
                )
            ),
        )
        revived = new_vids[existed[owner[new]]].tolist()
        if revived:
            metadata.clear_tombstones(conn, name, revived)
        metadata.set_vector_log(conn, name, file, committed + len(new))
        space_ops.drop.update(replaced.tolist())
        space_ops.put(vid_list, values)

    def _find_duplicates(self, batch: _Batch, lo: int, unmatched: list[int]) -> list[int | None]:
        """Per unmatched item (offsets from `lo`), an existing same-shop offer its vectors
        nearly repeat (see `upsert`), with one FAISS search for all of them."""
        threshold = self.options.duplicate_threshold
        name = self.options.duplicate_space
        out: list[int | None] = [None] * len(unmatched)
        space = self._spaces.get(name)
        given = batch.spaces.get(name)
        if threshold is None or space is None or given is None or space.index.ntotal == 0:
            return out
        items = np.array(unmatched, dtype=np.int64) + lo
        asking = (given.offsets[items + 1] > given.offsets[items]).nonzero()[0]
        if not len(asking):
            return out
        queries = given.matrix[given.offsets[items[asking]]]
        hits = self._search_space(space, queries, _DUPLICATE_CANDIDATES, None)
        close = {
            int(a): ids
            for a, found in zip(asking, hits, strict=True)
            if (ids := [h.offer_id for h in found if h.score >= threshold])
        }
        if not close:
            return out
        wanted = {c for ids in close.values() for c in ids}
        candidates = metadata.get_offers(self._conn, wanted)
        others = {  # the candidates' first vectors in the spaces that must agree as well
            other: self._first_vectors(other, wanted) for other in batch.spaces if other != name
        }
        for a, ids in close.items():
            i = int(items[a])
            row = batch.rows[i]
            ours = {
                other: first.rows(i)[0]
                for other, first in batch.spaces.items()
                if other != name and len(first.rows(i))
            }
            for offer_id in ids:
                other = candidates.get(offer_id)
                if other is None or other.shop != row.shop:
                    continue
                if row.gtin and other.gtin and row.gtin != other.gtin:
                    continue
                if not _agrees_elsewhere(offer_id, ours, others, threshold):
                    continue
                out[a] = offer_id
                break
        return out

    def _first_vectors(self, name: str, offer_ids: set[int]) -> dict[int, np.ndarray | None]:
        """The first vector in space `name` of the offers that have one there (None: its log
        row is damaged), read with one query and one log read."""
        rows = metadata.offer_vector_rows(self._conn, name, offer_ids)
        firsts = {offer_id: have[0] for offer_id, have in rows.items() if 0 in have}
        if not firsts:
            return {}
        source = self._current_log(self._conn, name, self._spaces[name].spec.dim)
        found = source.read(
            np.array(list(firsts.values()), dtype=np.int64),
            np.array([vector_id(offer_id, 0) for offer_id in firsts], dtype=np.int64),
        )
        return {
            offer_id: vector if ok else None
            for offer_id, vector, ok in zip(firsts, found.vectors, found.ok, strict=True)
        }

    def remove(self, offer_id: int) -> bool:
        """Delete an offer, its price history and its vectors; False when it did not exist."""
        self._require_writer()
        with self._write_lock:
            ops: dict[str, _Ops] = {name: _Ops() for name in self._spaces}
            with self._transaction():
                if not metadata.get_offers(self._conn, [offer_id]):
                    return False
                seq = metadata.state(self._conn, "seq") + 1
                rows = self._conn.execute(
                    "SELECT space, vector_id FROM vectors WHERE offer_id = ?", (offer_id,)
                ).fetchall()
                by_space: dict[str, list[int]] = {}
                for name, vid in rows:
                    by_space.setdefault(name, []).append(vid)
                for name, vids in by_space.items():
                    metadata.drop_vectors(self._conn, name, vids, seq)
                    if name in ops:
                        ops[name].drop.update(vids)
                title_terms.drop_titles(self._conn, [offer_id])
                self._conn.execute("DELETE FROM offers WHERE id = ?", (offer_id,))
                metadata.set_state(self._conn, "seq", seq)
            self._apply(ops, seq)
        return True

    def _apply(self, ops: dict[str, _Ops], seq: int) -> None:
        """Mirror a committed transaction into the in-memory indexes (brief exclusive lock)."""
        for name, space_ops in ops.items():
            space = self._spaces[name]
            if space_ops.drop or space_ops.add:
                ids, vectors = space_ops.added()
                with space.lock.write():
                    if space_ops.drop:
                        drop = np.fromiter(space_ops.drop, dtype=np.int64)
                        space.index.remove_ids(faiss.IDSelectorBatch(drop))
                    if len(ids):
                        space.index.add_with_ids(vectors, ids)
                    space.dirty = True
                if len(ids) and np.any(ids & (MAX_VECTORS_PER_OFFER - 1)):
                    space.multi_vector = True
                if self._damage.get(name):  # rewritten or removed: no longer damaged
                    with self._damage_lock:
                        self._damage[name] -= space_ops.drop | set(space_ops.add)
            space.applied_seq = seq


class _Runs:
    """Where a run of items that share no shop+URL and no shop+GTIN ends, from any start."""

    def __init__(self, batch: _Batch) -> None:
        rows = batch.rows
        self._size = len(rows)
        self._previous: np.ndarray | None = None  # None: no two items share a key
        gtins = [(r.shop, r.gtin) for r in rows if r.gtin]
        if len(set(batch.keys)) == len(rows) and len(set(gtins)) == len(gtins):
            return
        # per item, the last earlier item with one of its keys (-1: none)
        by_url: dict[tuple[str, str], int] = {}
        by_gtin: dict[tuple[str, str], int] = {}
        self._previous = np.full(len(rows), -1, dtype=np.int64)
        for i, (row, key) in enumerate(zip(rows, batch.keys, strict=True)):
            before = by_url.get(key, -1)
            by_url[key] = i
            if row.gtin:
                before = max(before, by_gtin.get(gtin_key := (row.shop, row.gtin), -1))
                by_gtin[gtin_key] = i
            self._previous[i] = before

    def end(self, start: int) -> int:
        if self._previous is None:
            return self._size
        clash = (self._previous[start:] >= start).nonzero()[0]
        return start + int(clash[0]) if len(clash) else self._size


def _agrees_elsewhere(
    offer_id: int,
    ours: dict[str, np.ndarray],
    firsts: dict[str, dict[int, np.ndarray | None]],
    threshold: float,
) -> bool:
    """True unless another space the new offer has vectors in tells the two apart.

    Photos alone are not enough: two products of one shop shot on the same backdrop can
    be near-identical to an image encoder (measured up to 0.9990 cosine on the demo shops),
    while their text vectors differ. Each other space's first vectors must agree too.
    `ours` holds the new offer's first vector per other space, `firsts` the candidates'.
    """
    for name, vector in ours.items():
        known = firsts[name]
        if offer_id not in known:
            continue
        other = known[offer_id]
        if other is None:  # a damaged row cannot vouch for the offer
            return False
        cosine = float(vector @ other) / max(
            float(np.linalg.norm(vector) * np.linalg.norm(other)), 1e-12
        )
        if cosine < threshold:
            return False
    return True


def _price_key(value: tuple[str | None, str | None]) -> tuple[Decimal | None, str | None]:
    price, currency = value
    return (None if price is None else Decimal(price), currency)
