"""The stored grouping: a product table with every offer pointing to one product, and why.

Lives in ``products.sqlite`` beside the store's own database (the store owns offers, prices and
vectors; this file owns products), so grouping can be rebuilt without touching crawled data.

Two ways to keep it current, both using `matching.compare` and the consistency rules of
`grouping`:

* `ProductGroups.assign(store, offer_id, vectors)` after each upsert (the Scrapy pipeline):
  joins the offer to the best consistent product among offers sharing its GTIN or a model code
  and its nearest neighbours in the store's vector spaces, or makes a new product;
* `ProductGroups.regroup(store)` (spider close, or ``cumpair search --regroup``): regroups
  every offer in one pass, which also merges products that a late offer showed to be one.
  Product ids stay stable where a new group keeps most of an old product's offers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cumpair.search.features import OfferFeatures, features_from_record, title_tokens
from cumpair.search.grouping import CONFLICT_RULES, RULE_STRENGTH, consistent, group_offers
from cumpair.search.matching import MatchConfig, PairEvidence, compare

DB_NAME = "products.sqlite"
NEIGHBOURS = 10  # vector neighbours compared per new offer and space

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL DEFAULT '', brand TEXT, model TEXT, gtin TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    offer_id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (id),
    shop TEXT NOT NULL, url TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    gtin TEXT, brand TEXT, models TEXT NOT NULL DEFAULT '', specs TEXT NOT NULL DEFAULT '{}',
    rule TEXT NOT NULL, score REAL NOT NULL, matched_offer INTEGER,
    evidence TEXT NOT NULL DEFAULT '{}', assigned_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS members_product ON members (product_id);
CREATE INDEX IF NOT EXISTS members_gtin ON members (gtin) WHERE gtin IS NOT NULL;
CREATE INDEX IF NOT EXISTS members_url ON members (url);
CREATE TABLE IF NOT EXISTS model_codes (
    code TEXT NOT NULL, offer_id INTEGER NOT NULL, PRIMARY KEY (code, offer_id));
"""


class GroupingError(RuntimeError):
    """The grouping cannot be read or updated (unknown offer, read-only database)."""


@dataclass(frozen=True)
class Product:
    id: int
    title: str
    brand: str | None
    model: str | None
    gtin: str | None


@dataclass(frozen=True)
class Membership:
    """Why an offer belongs to its product: the rule, score and offer it was matched with."""

    offer_id: int
    product_id: int
    rule: str  # "gtin", "model", "similarity" or "new" (first offer of its product)
    score: float
    matched_offer: int | None
    evidence: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ProductGroups:
    """Read and update the grouping; one instance per process, safe across threads."""

    def __init__(self, conn: sqlite3.Connection, readonly: bool) -> None:
        self._conn = conn
        self.readonly = readonly
        self._lock = threading.RLock()

    @classmethod
    def open(cls, directory: str | Path, *, readonly: bool = False) -> ProductGroups:
        """Open (creating when writable) ``products.sqlite`` in the store directory."""
        path = Path(directory) / DB_NAME
        if readonly:
            if not path.exists():
                raise GroupingError(f"no product grouping at {path} (run a crawl or --regroup)")
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                   check_same_thread=False, timeout=30)  # fmt: skip
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        return cls(conn, readonly)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ProductGroups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        """All rows of a query, read under the lock: `cumpair serve` reads from many threads."""
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def product(self, product_id: int) -> Product | None:
        row = self._rows(
            "SELECT id, title, brand, model, gtin FROM products WHERE id = ?", (product_id,)
        )
        row = row[0] if row else None
        return None if row is None else Product(*row)

    def offers_of(self, product_id: int) -> list[int]:
        rows = self._rows(
            "SELECT offer_id FROM members WHERE product_id = ? ORDER BY offer_id", (product_id,)
        )
        return [r[0] for r in rows]

    def product_of(self, offer_ids: Iterable[int]) -> dict[int, int]:
        ids = [int(i) for i in offer_ids]
        out: dict[int, int] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows = self._rows(
                f"SELECT offer_id, product_id FROM members WHERE offer_id IN ({marks})", chunk
            )
            out.update((int(o), int(p)) for o, p in rows)
        return out

    def membership(self, offer_id: int) -> Membership | None:
        row = self._rows(
            "SELECT offer_id, product_id, rule, score, matched_offer, evidence FROM members"
            " WHERE offer_id = ?",
            (offer_id,),
        )
        row = row[0] if row else None
        return None if row is None else Membership(*row[:5], json.loads(row[5]))

    def products_with_gtin(self, gtin: str) -> list[int]:
        rows = self._rows(
            "SELECT DISTINCT product_id FROM members WHERE gtin = ? ORDER BY product_id", (gtin,)
        )
        return [r[0] for r in rows]

    def products_with_model(self, code: str) -> list[int]:
        rows = self._rows(
            "SELECT DISTINCT m.product_id FROM model_codes c JOIN members m USING (offer_id)"
            " WHERE c.code = ? ORDER BY m.product_id",
            (code,),
        )
        return [r[0] for r in rows]

    def offers_with_url(self, url: str) -> list[int]:
        rows = self._rows("SELECT offer_id FROM members WHERE url = ?", (url,))
        return [r[0] for r in rows]

    def identity_facts(self, product_ids: Iterable[int]) -> dict[int, tuple[set, set, set]]:
        """Per product: (GTINs, model codes, brands) of its offers, for photo re-ranking."""
        out: dict[int, tuple[set, set, set]] = {}
        for pid in product_ids:
            gtins, models, brands = set(), set(), set()
            for gtin, brand, codes in self._rows(
                "SELECT gtin, brand, models FROM members WHERE product_id = ?", (pid,)
            ):
                if gtin:
                    gtins.add(gtin)
                if brand:
                    brands.add(brand)
                models.update(codes.split())
            out[pid] = (gtins, models, brands)
        return out

    def count(self) -> tuple[int, int]:
        """(products, grouped offers)."""
        products = self._rows("SELECT COUNT(*) FROM products")[0][0]
        offers = self._rows("SELECT COUNT(*) FROM members")[0][0]
        return int(products), int(offers)

    def _features(self, offer_ids: Iterable[int]) -> dict[int, OfferFeatures]:
        ids = list(offer_ids)
        out = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for oid, shop, title, gtin, brand, models, specs in self._rows(
                "SELECT offer_id, shop, title, gtin, brand, models, specs FROM members"
                f" WHERE offer_id IN ({marks})",
                chunk,
            ):
                out[oid] = OfferFeatures(
                    key=oid, shop=shop, title=title, gtin=gtin, brand=brand,
                    models=frozenset(models.split()), specs=json.loads(specs),
                    tokens=title_tokens(title),
                )  # fmt: skip
        return out

    # ------------------------------------------------------------------ writing
    def _require_writer(self) -> None:
        if self.readonly:
            raise GroupingError("the product grouping was opened read-only")

    def assign(
        self,
        store: Any,
        offer_id: int,
        vectors: Mapping[str, np.ndarray] | None = None,
        config: MatchConfig | None = None,
    ) -> Membership:
        """Group one offer just upserted into `store` (a `ProductStore`); return its membership.

        `vectors` are the offer's vectors by space (as given to `upsert`); the first row of each
        finds neighbours to compare with. An offer already grouped is re-grouped only when its
        identity (GTIN, model codes, brand) changed.
        """
        self._require_writer()
        record = store.get_offers([offer_id]).get(offer_id)
        if record is None:
            raise GroupingError(f"offer {offer_id} is not in the store")
        offer = features_from_record(record)
        with self._lock:
            current = self.membership(offer_id)
            if current is not None:
                old = self._features([offer_id])[offer_id]
                if (old.gtin, old.models, old.brand) == (offer.gtin, offer.models, offer.brand):
                    self._write_member(record, offer, current.product_id, current)
                    return current
                self._conn.execute("DELETE FROM members WHERE offer_id = ?", (offer_id,))
                self._conn.execute("DELETE FROM model_codes WHERE offer_id = ?", (offer_id,))
            sims = self._neighbour_sims(store, offer_id, vectors or {})
            candidates = set(sims) | self._blocked(offer)
            candidates.discard(offer_id)
            features = self._features(candidates)
            verdicts = [
                compare(
                    offer,
                    other,
                    text_sim=sims.get(key, {}).get("text"),
                    image_sim=sims.get(key, {}).get("image"),
                    config=config,
                )
                for key, other in features.items()
            ]
            best = self._best_product(offer, verdicts)
            if best is None:
                product_id = self._new_product(record, offer)
                membership = Membership(offer_id, product_id, "new", 1.0, None, {})
            else:
                product_id, verdict = best
                membership = Membership(
                    offer_id, product_id, verdict.rule, verdict.score, verdict.b, verdict.to_dict()
                )
            self._write_member(record, offer, product_id, membership)
            return membership

    def _neighbour_sims(
        self, store: Any, offer_id: int, vectors: Mapping[str, np.ndarray]
    ) -> dict[int, dict[str, float]]:
        sims: dict[int, dict[str, float]] = defaultdict(dict)
        for space, matrix in vectors.items():
            rows = np.asarray(matrix, dtype=np.float32)
            if rows.size == 0:
                continue
            query = rows.reshape(-1, rows.shape[-1])[:1]
            for hit in store.search(space, query, k=NEIGHBOURS + 1)[0]:
                if hit.offer_id != offer_id:
                    sims[hit.offer_id][space] = hit.score
        return sims

    def _blocked(self, offer: OfferFeatures) -> set[int]:
        """Offers sharing the GTIN or a model code (capped: a code on 50 offers is no model)."""
        found: set[int] = set()
        if offer.gtin:
            rows = self._conn.execute(
                "SELECT offer_id FROM members WHERE gtin = ? LIMIT 50", (offer.gtin,)
            )
            found.update(r[0] for r in rows)
        for code in offer.models:
            rows = self._conn.execute(
                "SELECT offer_id FROM model_codes WHERE code = ? LIMIT 51", (code,)
            ).fetchall()
            if len(rows) <= 50:
                found.update(r[0] for r in rows)
        return found

    def _best_product(
        self, offer: OfferFeatures, verdicts: list[PairEvidence]
    ) -> tuple[int, PairEvidence] | None:
        matches = sorted(
            (v for v in verdicts if v.same), key=lambda v: (RULE_STRENGTH[v.rule], -v.score)
        )
        if not matches:
            return None
        product_of = self.product_of(v.b for v in matches)
        tried: set[int] = set()
        for verdict in matches:
            product_id = product_of.get(verdict.b)
            if product_id is None or product_id in tried:
                continue
            tried.add(product_id)
            members = list(self._features(self.offers_of(product_id)).values())
            # Compare with every member too: a conflict with any of them vetoes the product.
            conflicts = {
                frozenset((offer.key, m.key))
                for m in members
                if compare(offer, m).rule in CONFLICT_RULES
            }
            if consistent([offer], members, conflicts):
                return product_id, verdict
        return None

    def _new_product(self, record: Any, offer: OfferFeatures) -> int:
        now = _now()
        cur = self._conn.execute(
            "INSERT INTO products (title, brand, model, gtin, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (record.title or "", record.brand, record.model, offer.gtin, now, now),
        )
        return int(cur.lastrowid)

    def _write_member(
        self, record: Any, offer: OfferFeatures, product_id: int, membership: Membership
    ) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._insert_member(record, offer, product_id, membership)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _insert_member(
        self, record: Any, offer: OfferFeatures, product_id: int, membership: Membership
    ) -> None:
        now = _now()
        self._conn.execute(
            "INSERT OR REPLACE INTO members (offer_id, product_id, shop, url, title, gtin,"
            " brand, models, specs, rule, score, matched_offer, evidence, assigned_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                offer.key, product_id, record.shop, record.url, record.title or "",
                offer.gtin, offer.brand, " ".join(sorted(offer.models)),
                json.dumps(dict(offer.specs)), membership.rule, membership.score,
                membership.matched_offer, json.dumps(membership.evidence), now,
            ),
        )  # fmt: skip
        self._conn.execute("DELETE FROM model_codes WHERE offer_id = ?", (offer.key,))
        self._conn.executemany(
            "INSERT INTO model_codes (code, offer_id) VALUES (?, ?)",
            [(code, offer.key) for code in offer.models],
        )
        self._conn.execute(
            "UPDATE products SET gtin = COALESCE(gtin, ?), brand = COALESCE(brand, ?),"
            " model = COALESCE(model, ?), updated_at = ? WHERE id = ?",
            (offer.gtin, record.brand, record.model, now, product_id),
        )

    def regroup(
        self,
        records: Iterable[Any],
        vectors: Mapping[str, Mapping[int, np.ndarray]] | None = None,
        config: MatchConfig | None = None,
        *,
        partial: bool = False,
    ) -> tuple[int, int]:
        """Regroup all `records` (store `OfferRecord`s) in one pass; returns (products, offers).

        `vectors` maps a space to {offer id: vector}; an offer without one in a space is compared
        there by its other signals only. Offers not in `records` leave the grouping, unless
        `partial`: then only `records` are regrouped and every other offer keeps its product
        (pass whole products, as `cumpair.ingest.stages.regroup_store` does, so a product is
        never split between the regrouped part and the rest).
        """
        self._require_writer()
        records = list(records)
        features = [features_from_record(r) for r in records]
        matrices = {}
        for space, by_offer in (vectors or {}).items():
            if all(r.id in by_offer for r in records) and records:
                matrices[space] = np.stack([by_offer[r.id] for r in records]).astype(np.float32)
        grouping = group_offers(features, matrices, config=config)
        with self._lock:
            old = self.product_of(r.id for r in records)
            groups = grouping.groups()
            ids = self._stable_ids(groups, old)
            keep = set(ids.values())
            by_key = {r.id: r for r in records}
            feats = {f.key: f for f in features}
            self._conn.execute("BEGIN IMMEDIATE")
            try:  # one transaction: readers see the old grouping or the new one, never a mix
                if partial:
                    stale = sorted(set(old.values()))
                    self._conn.executemany(
                        "DELETE FROM members WHERE offer_id = ?", [(r.id,) for r in records]
                    )
                    self._conn.executemany(
                        "DELETE FROM model_codes WHERE offer_id = ?", [(r.id,) for r in records]
                    )
                else:
                    stale = [r[0] for r in self._conn.execute("SELECT id FROM products")]
                    self._conn.execute("DELETE FROM members")
                    self._conn.execute("DELETE FROM model_codes")
                self._conn.executemany(  # a product left without offers goes
                    "DELETE FROM products WHERE id = ?"
                    " AND NOT EXISTS (SELECT 1 FROM members WHERE product_id = ?)",
                    [(p, p) for p in stale if p not in keep],
                )
                for group_index, members in enumerate(groups):
                    first = by_key[members[0]]
                    product_id = ids.get(group_index) or self._new_product(first, feats[first.id])
                    for key in members:
                        membership = self._regroup_membership(key, product_id, members, grouping)
                        self._insert_member(by_key[key], feats[key], product_id, membership)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return len(grouping.groups()), len(records)

    @staticmethod
    def _regroup_membership(key: int, product_id: int, members: list[int], grouping) -> Membership:
        evidence = grouping.evidence.get(key)
        if evidence is None or len(members) == 1:
            return Membership(key, product_id, "new", 1.0, None, {})
        other = evidence.b if evidence.a == key else evidence.a
        return Membership(key, product_id, evidence.rule, evidence.score, other, evidence.to_dict())

    def _stable_ids(self, groups: list[list[int]], old: dict[int, int]) -> dict[int, int]:
        """Group index -> the old product id most of its offers had (each id used once)."""
        ids: dict[int, int] = {}
        taken: set[int] = set()
        order = sorted(range(len(groups)), key=lambda g: -len(groups[g]))
        for g in order:
            votes = Counter(old[k] for k in groups[g] if k in old)
            for product_id, _ in votes.most_common():
                if product_id not in taken:
                    ids[g] = product_id
                    taken.add(product_id)
                    break
        return ids
