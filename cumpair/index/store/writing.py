"""Upserts and duplicate detection: offer rows, vector log rows and index changes of one
transaction (same URL, same GTIN, or a near-identical vector of the same shop is one offer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import faiss
import numpy as np

from cumpair.index import metadata
from cumpair.index.records import MAX_VECTORS_PER_OFFER, OfferRecord, UpsertResult, vector_id
from cumpair.index.store.base import StoreBase, _Ops

_DUPLICATE_CANDIDATES = 8

# An upsert after validation: the offer's column values, ISO sighting time, vectors per space.
_Prepared = tuple[metadata.OfferRow, str, dict[str, np.ndarray]]


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
        near-duplicate detection only sees vectors indexed before the batch.
        """
        self._require_writer()
        items = list(items)
        offers = [self._check_offer(offer) for offer, _ in items]
        vectors = self._check_batch_vectors([v for _, v in items])
        prepared = [(o, row, v) for (o, row), v in zip(offers, vectors, strict=True)]
        if not prepared:
            return []
        with self._write_lock:
            ops: dict[str, _Ops] = {name: _Ops() for name in self._spaces}
            results: list[UpsertResult] = []
            with self._transaction():
                seq = metadata.state(self._conn, "seq") + 1
                while len(results) < len(prepared):
                    start = len(results)
                    chunk = prepared[start : _independent_end(prepared, start)]
                    results += self._upsert_chunk(chunk, seq, ops)
                metadata.set_state(self._conn, "seq", seq)
            self._apply(ops, seq)
        self._schedule_upgrades()
        return results

    def _upsert_chunk(
        self, chunk: list[_Prepared], seq: int, ops: dict[str, _Ops]
    ) -> list[UpsertResult]:
        """Upsert items with distinct URLs and GTINs; stops early before two hit one offer."""
        conn = self._conn
        by_url = metadata.offers_by_url(conn, [(o.shop, o.url) for o, _, _ in chunk])
        by_gtin = metadata.offers_by_gtin(conn, [(o.shop, o.gtin) for o, _, _ in chunk if o.gtin])
        found: list[tuple[int | None, str]] = []
        for offer, _, _ in chunk:
            offer_id, matched = by_url.get((offer.shop, offer.url)), "url"
            if offer_id is None and offer.gtin:
                offer_id, matched = by_gtin.get((offer.shop, offer.gtin)), "gtin"
            found.append((offer_id, matched))
        unmatched = [i for i, (offer_id, _) in enumerate(found) if offer_id is None]
        duplicates = self._find_duplicates([chunk[i] for i in unmatched])
        for i, offer_id in zip(unmatched, duplicates, strict=True):
            found[i] = (offer_id, "vector") if offer_id is not None else (None, "new")
        taken: set[int] = set()
        for end, (offer_id, _) in enumerate(found):
            if offer_id is not None and offer_id in taken:  # the rest waits for this to land
                chunk, found = chunk[:end], found[:end]
                break
            if offer_id is not None:
                taken.add(offer_id)
        prices = metadata.current_prices(conn, taken)
        next_id = metadata.next_offer_id(conn)
        inserts, updates, points, decided = [], [], [], []
        for (row, seen, _), (offer_id, matched) in zip(chunk, found, strict=True):
            price_changed = False
            if offer_id is None:
                offer_id, next_id = next_id, next_id + 1
                inserts.append((offer_id, row, seen))
            else:
                new = (row.price, row.currency)
                price_changed = _price_key(prices[offer_id]) != _price_key(new)
                updates.append((offer_id, row, seen, matched == "vector"))
            points.append((offer_id, row, seen))
            decided.append((offer_id, matched, price_changed))
        metadata.insert_offers(conn, inserts)
        metadata.update_offers(conn, updates)
        metadata.append_prices(conn, points)
        offer_ids = [offer_id for offer_id, _, _ in decided]
        counts = [[0, 0] for _ in chunk]  # vectors added, removed
        for name in self._spaces:
            self._write_vectors(name, chunk, offer_ids, taken, seq, ops[name], counts)
        return [
            UpsertResult(offer_id, matched, changed, added, removed)
            for (offer_id, matched, changed), (added, removed) in zip(decided, counts, strict=True)
        ]

    def _write_vectors(
        self,
        name: str,
        chunk: list[_Prepared],
        offer_ids: list[int],
        existed: set[int],
        seq: int,
        space_ops: _Ops,
        counts: list[list[int]],
    ) -> None:
        """Append the chunk's changed vectors of one space to its log, then their rows."""
        conn = self._conn
        given = [(i, vectors[name]) for i, (_, _, vectors) in enumerate(chunk) if name in vectors]
        if not given:
            return
        file, committed = metadata.vector_log(conn, name)
        vectors_log = self._vector_log(file, self._spaces[name].spec.dim)
        old_rows = metadata.offer_vector_rows(
            conn, name, [offer_ids[i] for i, _ in given if offer_ids[i] in existed]
        )
        wanted = sorted(
            (row, vector_id(offer_id, ordinal))
            for offer_id, rows in old_rows.items()
            for ordinal, row in rows.items()
        )
        old_read = vectors_log.read(
            np.array([r for r, _ in wanted], dtype=np.int64),
            np.array([v for _, v in wanted], dtype=np.int64),
        )
        old_values = {  # a damaged old row never equals the new vector, so it gets rewritten
            row: vector for (row, _), vector, ok in zip(wanted, *old_read, strict=True) if ok
        }
        fresh: list[np.ndarray] = []
        rows: list[tuple[str, int, int, int, int, int]] = []
        revived: list[int] = []
        for i, matrix in given:
            offer_id = offer_ids[i]
            have = old_rows.get(offer_id, {})
            added = removed = 0
            for ordinal, vector in enumerate(matrix):
                old = have.get(ordinal)
                if old in old_values and np.array_equal(old_values[old], vector):
                    continue
                vid = vector_id(offer_id, ordinal)
                rows.append((name, vid, offer_id, ordinal, seq, committed + len(fresh)))
                fresh.append(vector)
                if offer_id in existed:
                    revived.append(vid)
                if old is not None:
                    space_ops.drop.add(vid)
                space_ops.add[vid] = vector
                added += 1
            for ordinal in have:
                if ordinal >= len(matrix):
                    vid = vector_id(offer_id, ordinal)
                    metadata.drop_vector(conn, name, vid, seq)
                    space_ops.drop.add(vid)
                    space_ops.add.pop(vid, None)
                    removed += 1
            counts[i][0] += added
            counts[i][1] += removed
        if fresh:
            vectors_log.write(committed, np.array([r[1] for r in rows]), np.stack(fresh))
            if self.options.synchronous == "FULL":
                vectors_log.sync()
            metadata.put_vectors(conn, rows)
            metadata.clear_tombstones(conn, name, revived)
            metadata.set_vector_log(conn, name, file, committed + len(fresh))

    def _find_duplicates(self, items: list[_Prepared]) -> list[int | None]:
        """Per item, an existing same-shop offer its vectors nearly repeat (see `upsert`)."""
        threshold = self.options.duplicate_threshold
        name = self.options.duplicate_space
        out: list[int | None] = [None] * len(items)
        space = self._spaces.get(name)
        if threshold is None or space is None or space.index.ntotal == 0:
            return out
        asking = [i for i, (_, _, vectors) in enumerate(items) if len(vectors.get(name, ()))]
        if not asking:
            return out
        queries = np.stack([items[i][2][name][0] for i in asking])
        hits = self._search_space(space, queries, _DUPLICATE_CANDIDATES, None)
        close = {i: [h.offer_id for h in found if h.score >= threshold] for i, found in
                 zip(asking, hits, strict=True)}  # fmt: skip
        candidates = metadata.get_offers(self._conn, {c for ids in close.values() for c in ids})
        for i, ids in close.items():
            offer, _, vectors = items[i]
            for offer_id in ids:
                other = candidates.get(offer_id)
                if other is None or other.shop != offer.shop:
                    continue
                if offer.gtin and other.gtin and offer.gtin != other.gtin:
                    continue
                if not self._agrees_elsewhere(offer_id, vectors, name, threshold):
                    continue
                out[i] = offer_id
                break
        return out

    def _agrees_elsewhere(
        self, offer_id: int, vectors: dict[str, np.ndarray], duplicate_space: str, threshold: float
    ) -> bool:
        """True unless another space the new offer has vectors in tells the two apart.

        Photos alone are not enough: two products of one shop shot on the same backdrop can
        be near-identical to an image encoder (measured up to 0.9990 cosine on the demo shops),
        while their text vectors differ. Each other space's first vectors must agree too.
        """
        for name, matrix in vectors.items():
            if name == duplicate_space or not len(matrix):
                continue
            row = metadata.offer_vector_rows(self._conn, name, [offer_id]).get(offer_id, {}).get(0)
            if row is None:
                continue
            source = self._current_log(self._conn, name, self._spaces[name].spec.dim)
            found = source.read(np.array([row]), np.array([vector_id(offer_id, 0)]))
            if not found.ok[0]:  # a damaged row cannot vouch for the offer
                return False
            other = found.vectors[0]
            ours = np.asarray(matrix[0], dtype=np.float32)
            cosine = float(ours @ other) / max(
                float(np.linalg.norm(ours) * np.linalg.norm(other)), 1e-12
            )
            if cosine < threshold:
                return False
        return True

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
                for name, vid in rows:
                    metadata.drop_vector(self._conn, name, vid, seq)
                    if name in ops:
                        ops[name].drop.add(vid)
                self._conn.execute("DELETE FROM offers WHERE id = ?", (offer_id,))
                metadata.set_state(self._conn, "seq", seq)
            self._apply(ops, seq)
        return True

    def _apply(self, ops: dict[str, _Ops], seq: int) -> None:
        """Mirror a committed transaction into the in-memory indexes (brief exclusive lock)."""
        for name, space_ops in ops.items():
            space = self._spaces[name]
            if space_ops.drop or space_ops.add:
                ids = np.fromiter(space_ops.add, dtype=np.int64, count=len(space_ops.add))
                with space.lock.write():
                    if space_ops.drop:
                        drop = np.fromiter(space_ops.drop, dtype=np.int64)
                        space.index.remove_ids(faiss.IDSelectorBatch(drop))
                    if len(ids):
                        space.index.add_with_ids(np.stack(list(space_ops.add.values())), ids)
                    space.dirty = True
                if len(ids) and np.any(ids & (MAX_VECTORS_PER_OFFER - 1)):
                    space.multi_vector = True
                if self._damage.get(name):  # rewritten or removed: no longer damaged
                    with self._damage_lock:
                        self._damage[name] -= space_ops.drop | set(space_ops.add)
            space.applied_seq = seq


def _independent_end(items: list[_Prepared], start: int) -> int:
    """End of the run from `start` in which no two items share a shop+URL or shop+GTIN."""
    seen: set[tuple[str, str, str]] = set()
    for end in range(start, len(items)):
        offer = items[end][0]
        keys = {("url", offer.shop, offer.url)}
        if offer.gtin:
            keys.add(("gtin", offer.shop, offer.gtin))
        if seen & keys:
            return end
        seen |= keys
    return len(items)


def _price_key(value: tuple[str | None, str | None]) -> tuple[Decimal | None, str | None]:
    price, currency = value
    return (None if price is None else Decimal(price), currency)
