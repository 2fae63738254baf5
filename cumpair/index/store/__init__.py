"""ProductStore: offers and their vectors, durable on disk, searchable while a crawl writes.

One module per job: base (shared state and file handles), opening (open, replay, tidy, close),
validation, writing (upserts, duplicates), searching, persistence (flush, compaction), upgrade
(Flat -> IVF-PQ), health (health, check), recovery (a lost database). `ProductStore` is their sum
(product_store.py); rows.py reads offer rows alone (`OfferRows`), without numpy or FAISS.

Durability model (what a ``kill -9`` leaves): every `upsert`/`remove` commits its offer rows and
vector rows to SQLite (WAL) before it returns, stamped with a sequence number; the raw vectors go
to an append-only log file per space (vectorlog.py) written before that commit. FAISS files are
snapshots taken by `flush` (temp file, fsync, rename, then a SQLite row makes it current). Opening
loads the newest verifiable snapshot and replays the rows newer than it, so a reopened store holds
*everything whose upsert returned* — not only the last flush. Corrupt or truncated snapshots fall
back to older ones (``backups_keep``) or to a rebuild from SQLite, recorded in `health`.

Damage model: every vector log row carries its id and a CRC32, checked on every read; a row that
fails (flipped bytes, a torn write, a log cut short) is never indexed, re-ranked on or scanned,
is reported in `health` and by `check`, and costs only its own vector. Opening never deletes what
the database does not account for: such bytes and files go to ``lost+found/`` (lostfound.py),
and a directory whose ``meta.sqlite`` is gone is refused (`MissingDatabaseError`; `recover`).
Disk errors (a full disk) raise `StoreIOError`.

Usage (the Scrapy pipeline calls `upsert` per item, `maybe_flush` on its own pace, `close` when the
spider closes)::

    image, text = encoders.image_info, encoders.text_info   # from cumpair.embed.load_encoders
    spaces = {"image": SpaceSpec(image.dim, image.name, image.version),
              "text": SpaceSpec(text.dim, text.name, text.version)}
    with ProductStore.open("index_data", spaces, StoreOptions()) as store:
        result = store.upsert(offer, {"image": image_vectors, "text": text_vector})
        hits = store.search("image", query_vectors, k=10)   # list per query of Hit(offer_id, ...)
        offers = store.get_offers(h.offer_id for h in hits[0])

Concurrency: one writer process per directory (file lock); inside it any number of threads or
asyncio tasks (`asearch`) may search while one thread writes. A Flat space turns into IVF-PQ past
``upgrade_threshold`` on a worker thread that builds aside and swaps the finished index in.
Read-only stores (``readonly=True``, other processes) replay new rows every ``reader_refresh_s``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cumpair.index.metadata import DB_NAME
from cumpair.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from cumpair.index.store.product_store import ProductStore
    from cumpair.index.store.recovery import recover

# Loaded on first use (PEP 562): every part of `ProductStore` imports numpy and FAISS, and the
# rows-only modules of this package (rows.py, directory.py) are imported without them.
_LAZY = {
    "ProductStore": "cumpair.index.store.product_store",
    "recover": "cumpair.index.store.recovery",
}

__getattr__ = lazy_getattr(globals(), _LAZY)


__all__ = ["DB_NAME", "ProductStore", "recover"]
