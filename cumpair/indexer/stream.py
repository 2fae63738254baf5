"""The crawl-to-indexer queue: a Redis stream read through one consumer group.

Crawl processes `add` items (XADD). The indexer `read`s them (XREADGROUP): Redis keeps every
entry it delivered in the group's pending list until the indexer `ack`s it (XACK, then XDEL so
the stream holds only work not yet done). An indexer killed between the two finds its pending
entries again when it restarts, before any new ones: nothing delivered is lost, and what is
redelivered is an offer the store already keys by (shop, url). Entries that are not items
go to a dead-letter stream (``<key>:dead``) with the reason, never silently dropped. The ids of
the offers indexed but not yet regrouped wait in the set ``<key>:regroup``, added in the same
transaction as the acknowledgement and removed only once their regroup is done, so an indexer
killed before its regroup leaves them for the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from cumpair.indexer.messages import ITEM_FIELD, RUN_FIELD, MessageError, decode_item, encode_item

#: The stream every crawl of a store writes, unless CRAWL_REDIS_ITEMS_KEY names another.
DEFAULT_KEY = "cumpair:items"
GROUP = "indexer"
#: One indexer per store, so one consumer name: a restarted indexer owns its pending entries.
CONSUMER = "indexer"
#: Seconds a run's record of indexed offers outlives its last entry.
RUN_RECORD_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Entry:
    """One delivered stream entry: its id (to `ack`) and its item, or why it is no item."""

    id: str
    item: dict[str, Any] | None
    error: str | None = None
    run: str | None = None  # the crawl run (frontier) that produced it
    redelivered: bool = False  # delivered before, to an indexer that did not acknowledge it

    @property
    def offer_key(self) -> str:
        assert self.item is not None
        return f"{self.item['shop']}\x1f{self.item['url']}"


class ItemStream:
    """A stream of items at `key` on `client` (a `redis.Redis`)."""

    def __init__(self, client: redis.Redis, key: str = DEFAULT_KEY) -> None:
        self.client = client
        self.key = key
        self.dead_key = f"{key}:dead"
        self.regroup_key = f"{key}:regroup"
        self._pending_after: str | None = "0"  # None once this run has seen all it inherited

    @classmethod
    def from_url(cls, url: str, key: str = DEFAULT_KEY) -> ItemStream:
        return cls(redis.Redis.from_url(url), key)

    def add(self, item: Mapping[str, Any], run: str | None = None) -> str:
        """Append one item of crawl run `run`; returns the entry id."""
        fields = {ITEM_FIELD: encode_item(item)}
        if run:
            fields[RUN_FIELD] = run
        return _text(self.client.xadd(self.key, fields))

    def ensure_group(self) -> None:
        """Create the indexer's consumer group (and the stream) unless they exist."""
        try:
            self.client.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int, block_s: float) -> list[Entry]:
        """Up to `count` entries: first, once each, those delivered before and never
        acknowledged (a previous run killed mid-batch), then new ones, waiting up to `block_s`
        for them."""
        if self._pending_after is not None:
            entries = self._read(self._pending_after, count, None)
            if entries:
                self._pending_after = entries[-1].id
                return entries
            self._pending_after = None
        return self._read(">", count, max(1, int(block_s * 1000)))

    def ack(self, ids: Sequence[str]) -> None:
        """Done with `ids`: acknowledged and deleted in one transaction."""
        if ids:
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(self.key, GROUP, *ids).xdel(self.key, *ids)
            pipe.execute()

    def already_indexed(self, entry: Entry) -> bool:
        """Whether an entry's offer was indexed before in the same crawl run."""
        if entry.run is None or entry.item is None:
            return False
        return bool(self.client.sismember(self._run_key(entry.run), entry.offer_key))

    def indexed(self, entry: Entry, offer_id: int) -> None:
        """Done with an entry stored as offer `offer_id`: the offer recorded for its run and as
        waiting for a regroup, the entry acknowledged and deleted, all in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        if entry.run is not None and entry.item is not None:
            run_key = self._run_key(entry.run)
            pipe.sadd(run_key, entry.offer_key).expire(run_key, RUN_RECORD_TTL_S)
        pipe.sadd(self.regroup_key, offer_id)
        pipe.xack(self.key, GROUP, entry.id).xdel(self.key, entry.id)
        pipe.execute()

    def await_regroup(self, offer_id: int) -> None:
        """Record an offer stored by other means (the local spool) as waiting for a regroup."""
        self.client.sadd(self.regroup_key, offer_id)

    def awaiting_regroup(self) -> set[int]:
        """The offers indexed and not yet regrouped (also by an indexer that was killed)."""
        return {int(member) for member in self.client.smembers(self.regroup_key)}

    def regrouped(self, offer_ids: Sequence[int] | set[int]) -> None:
        """Offers whose regroup is done (durable): no longer waiting for one."""
        if offer_ids:
            self.client.srem(self.regroup_key, *offer_ids)

    def reject(self, entry: Entry, reason: str) -> None:
        """Move an entry that cannot be indexed to the dead-letter stream, then acknowledge it."""
        raw = self.client.xrange(self.key, entry.id, entry.id)
        fields = raw[0][1] if raw else {}
        self.client.xadd(self.dead_key, {**fields, b"reason": reason, b"id": entry.id})
        self.ack([entry.id])

    def backlog(self) -> int:
        """Entries not yet acknowledged (delivered or not)."""
        return int(self.client.xlen(self.key))

    def _run_key(self, run: str) -> str:
        return f"{self.key}:indexed:{run}"

    def _read(self, start: str, count: int, block_ms: int | None) -> list[Entry]:
        reply = self.client.xreadgroup(
            GROUP, CONSUMER, {self.key: start}, count=count, block=block_ms
        )
        entries = []
        for _, rows in reply or ():
            for entry_id, fields in rows:
                entries.append(_entry(_text(entry_id), fields, redelivered=start != ">"))
        return entries


def _entry(entry_id: str, fields: Mapping[bytes, bytes] | None, redelivered: bool) -> Entry:
    if fields is None:  # deleted from the stream after delivery: nothing left to index
        return Entry(entry_id, None, "entry deleted", redelivered=redelivered)
    raw = fields.get(ITEM_FIELD.encode())
    if raw is None:
        return Entry(entry_id, None, f"no {ITEM_FIELD!r} field", redelivered=redelivered)
    run = fields.get(RUN_FIELD.encode())
    try:
        item = decode_item(raw)
    except MessageError as exc:
        return Entry(entry_id, None, str(exc), redelivered=redelivered)
    return Entry(entry_id, item, run=_text(run) if run else None, redelivered=redelivered)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = ["CONSUMER", "DEFAULT_KEY", "GROUP", "Entry", "ItemStream"]
