"""Typed records that cross the product-store API: space specs, options, offers, hits, errors.

Plain dataclasses and named tuples only; nothing here touches FAISS or SQLite, so callers (the
Scrapy pipeline, the search service) can build and inspect them without opening a store.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Self

from cumpair.flags import parse_flag

# A vector id packs (offer id, image ordinal): ``offer_id << ORDINAL_BITS | ordinal``.
ORDINAL_BITS = 8
MAX_VECTORS_PER_OFFER = 1 << ORDINAL_BITS


def vector_id(offer_id: int, ordinal: int) -> int:
    """The FAISS id of the `ordinal`-th vector of an offer (stable across flushes and rebuilds)."""
    if not 0 <= ordinal < MAX_VECTORS_PER_OFFER:
        raise ValueError(f"ordinal {ordinal} outside 0..{MAX_VECTORS_PER_OFFER - 1}")
    return (offer_id << ORDINAL_BITS) | ordinal


def split_vector_id(vid: int) -> tuple[int, int]:
    """Inverse of `vector_id`: (offer id, ordinal)."""
    return vid >> ORDINAL_BITS, vid & (MAX_VECTORS_PER_OFFER - 1)


class StoreError(Exception):
    """Base class of every error the product store raises on purpose."""


class EncoderMismatchError(StoreError):
    """A space was opened with another encoder, version or dimension than it was built with."""


class StoreLockedError(StoreError):
    """Another process holds the writer lock of this store directory."""


class ReadOnlyStoreError(StoreError):
    """A mutating call was made on a store opened with ``readonly=True``."""


class InvalidVectorError(StoreError, ValueError):
    """Vectors with the wrong shape, dimension, dtype, or non-finite values."""


class InvalidOfferError(StoreError, ValueError):
    """An offer record missing required fields or holding values that cannot be stored exactly."""


class UnknownSpaceError(StoreError, KeyError):
    """A vector space name the store was not opened with."""


class StoreIOError(StoreError, OSError):
    """A disk operation of the store failed (disk full, I/O error); ``errno`` says which."""


class VectorLogError(StoreError):
    """A vector log file is not a log of the expected format and dimension."""


class MissingDatabaseError(StoreError):
    """Data files lie in the store directory but its metadata database is gone.

    Opening refuses instead of starting an empty database that would not know those files;
    ``cumpair index recover`` keeps them aside and inventories them.
    """


@dataclass(frozen=True)
class SpaceSpec:
    """One named vector space: its dimension and the encoder that produced its vectors.

    ``normalize`` L2-normalises vectors on add and queries on search, so inner-product scores
    are cosine similarities in [-1, 1] (what the duplicate threshold is expressed in).
    """

    dim: int
    encoder: str
    version: str = ""
    normalize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or self.dim <= 0:
            raise ValueError(f"SpaceSpec.dim must be a positive int, got {self.dim!r}")
        if not self.encoder:
            raise ValueError("SpaceSpec.encoder must name the encoder")


SETTINGS_PREFIX = "CUMPAIR_INDEX_"


@dataclass(frozen=True)
class StoreOptions:
    """Every tunable of the store.

    Each field is the Scrapy setting ``CUMPAIR_INDEX_<FIELD>`` (e.g. ``flush_interval_s`` is
    ``CUMPAIR_INDEX_FLUSH_INTERVAL_S``), with the default given here: see `from_settings`.
    """

    flush_interval_s: float = 300.0  # maybe_flush() writes snapshots at most this often
    backups_keep: int = 3  # older snapshot generations kept per space (fallback on corruption)
    upgrade_threshold: int = 100_000  # live vectors in a space before Flat -> IVF-PQ
    retrain_growth: float = 4.0  # re-train IVF-PQ once a space grew this much past its training
    recall_target: float = 0.95  # nprobe is tuned until recall@recall_k reaches this
    recall_k: int = 10
    # a search asking for near neighbours only (`SearchEffort.near`: grouping's) probes the lists
    # tuned until it finds this share of the neighbours at `near_cosine` or above
    near_cosine: float = 0.8
    near_recall_target: float = 0.99
    # ...and at least this many (or the tuned nprobe when lower): the tuning measures vectors
    # like those trained on, and later ones from elsewhere (a new category) sit farther from the
    # centroids, where it under-counts (bench_grouping at 10^4: 4 of 16 lists, tuned for 0.998 at
    # 5000 vectors, found 0.952 once the store had doubled)
    near_min_lists: int = 32
    max_code_bytes: int = 16  # PQ code bytes per vector; the 8-byte id comes on top
    fast_scan: bool = True  # 4-bit fast-scan PQ (PQmx4fs); False: the earlier 8-bit PQ codes
    coarse_hnsw: bool = False  # HNSW over the IVF centroids (IVFn_HNSW32) instead of Flat
    max_centroid_bytes: float = 3.0  # RAM of the coarse centroids per vector: caps nlist
    # OPQ rotation before PQ: None = for 8-bit codes from `opq_from` vectors on (at 10^6 x 512
    # it lifted their recall@10 from 0.81 to 0.97); fast-scan codes re-ranked exactly skip it.
    use_opq: bool | None = None
    opq_from: int = 100_000
    refine_k_factor: int = 64  # deepest exact re-rank (k*factor candidates) tuning may pick
    duplicate_threshold: float | None = 0.995  # cosine; None disables near-duplicate merging
    duplicate_space: str = "image"
    background_upgrade: bool = True  # build IVF-PQ on a worker thread, swap when ready
    lock_timeout_s: float = 10.0  # wait for another writer process before StoreLockedError
    reader_refresh_s: float = 5.0  # read-only stores look for newer data this often
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"  # FULL also survives power loss
    multi_vector_oversample: int = 4  # extra candidates when offers hold several vectors

    def __post_init__(self) -> None:
        if self.flush_interval_s < 0 or self.backups_keep < 0 or self.upgrade_threshold < 1:
            raise ValueError("flush_interval_s, backups_keep >= 0 and upgrade_threshold >= 1")
        if not 0 < self.recall_target <= 1 or not 0 < self.near_recall_target <= 1:
            raise ValueError("recall_target and near_recall_target must be in (0, 1]")
        if not -1 <= self.near_cosine <= 1:
            raise ValueError("near_cosine is a cosine similarity in [-1, 1]")
        if self.near_min_lists < 1:
            raise ValueError("near_min_lists must be at least 1")
        if self.duplicate_threshold is not None and not -1 <= self.duplicate_threshold <= 1:
            raise ValueError("duplicate_threshold is a cosine similarity in [-1, 1] or None")
        if self.synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")

    @classmethod
    def setting_defaults(cls, prefix: str = SETTINGS_PREFIX) -> dict[str, Any]:
        """``{CUMPAIR_INDEX_<FIELD>: default}`` for every field (what settings.py declares)."""
        return {prefix + f.name.upper(): f.default for f in fields(cls)}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], prefix: str = SETTINGS_PREFIX) -> Self:
        """The options that ``CUMPAIR_INDEX_<FIELD>`` settings give, every field, whole.

        `settings` is anything with ``in`` and ``get`` (Scrapy's `Settings`, a dict). Values
        may be typed or text (``-s CUMPAIR_INDEX_USE_OPQ=false``); ``None``, ``""`` or
        ``"none"`` stand for None in the fields that allow it. A value of the wrong kind raises
        `ValueError` naming the setting. Absent settings keep the defaults above.
        """
        hints = typing.get_type_hints(cls)
        values = {}
        for f in fields(cls):
            name = prefix + f.name.upper()
            if name in settings:
                values[f.name] = _setting_value(name, settings.get(name), hints[f.name])
        return cls(**values)


def _setting_value(name: str, value: Any, kind: Any) -> Any:
    """`value` of setting `name` as field type `kind` (bool, int, float, str, Literal, X | None)."""
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        (kind,) = [a for a in args if a is not type(None)]
        args = typing.get_args(kind)
    text = value.strip() if isinstance(value, str) else value
    try:
        if typing.get_origin(kind) is Literal:
            if text not in args:
                raise ValueError(f"not one of {', '.join(map(repr, args))}")
            return text
        if kind is bool:
            flag = parse_flag(text)
            if flag is None:
                raise ValueError("not a boolean")
            return flag
        if kind is int and isinstance(text, bool | float):
            raise ValueError("not an integer")
        return kind(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name}={value!r}: {exc}") from None


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class OfferRecord:
    """One offer: a shop selling something at a URL. ``id`` and the seen dates are set by the store.

    ``price`` is a Decimal stored exactly (as text); ``specs`` is the spec output contract dict.
    ``seen_at`` is when the crawler saw the page (default: now, UTC). ``condition`` is a
    schema.org OfferItemCondition short name (`CONDITIONS`; the full names and IRIs are accepted
    and shortened). ``shipping`` holds the item's shipping rules/rates as it gives them (a list
    of JSON objects, stored verbatim); ``spec_conflicts`` the specs pipeline's
    ``{field, page, image, image_url}`` records of where page and photos disagreed.
    """

    shop: str
    url: str
    title: str = ""
    price: Decimal | None = None
    currency: str | None = None
    availability: str | None = None
    brand: str | None = None
    model: str | None = None
    sku: str | None = None
    gtin: str | None = None
    category: str | None = None
    image_paths: tuple[str, ...] = ()
    image_urls: tuple[str, ...] = ()
    specs: dict[str, Any] = field(default_factory=dict)
    seen_at: datetime | None = None
    id: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    product_id: int | None = None
    condition: str | None = None
    shipping: list[dict[str, Any]] = field(default_factory=list)
    spec_conflicts: list[dict[str, Any]] = field(default_factory=list)


# schema.org OfferItemCondition members, by the short name the store keeps.
CONDITIONS = ("New", "Used", "Refurbished", "Damaged")
_CONDITION_PREFIXES = ("https://schema.org/", "http://schema.org/", "schema:")


def condition_name(value: str | None) -> str | None:
    """The short name of a schema.org item condition (``NewCondition``, its IRI, ``new``...).

    Raises `ValueError` for anything that is not one of `CONDITIONS`.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"condition must be a string, got {value!r}")
    text = value.strip()
    for prefix in _CONDITION_PREFIXES:
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix) :]
    if text.lower().endswith("condition"):
        text = text[: -len("condition")]
    for name in CONDITIONS:
        if text.lower() == name.lower():
            return name
    raise ValueError(f"condition {value!r} is not one of {', '.join(CONDITIONS)} (schema.org)")


@dataclass(frozen=True)
class PricePoint:
    """One row of an offer's price history (appended on every crawl of the offer)."""

    price: Decimal | None
    currency: str | None
    availability: str | None
    seen_at: datetime


class UpsertResult(NamedTuple):
    """What `ProductStore.upsert` did.

    ``matched_by``: ``"new"`` (inserted), ``"url"`` (same shop+URL), ``"gtin"`` (same GTIN in the
    same shop) or ``"vector"`` (near-identical vector of an offer of the same shop). A
    NamedTuple rather than a dataclass: a bulk load builds one per offer.
    """

    offer_id: int
    matched_by: Literal["new", "url", "gtin", "vector"]
    price_changed: bool
    vectors_added: int
    vectors_removed: int

    @property
    def created(self) -> bool:
        return self.matched_by == "new"


class Hit(NamedTuple):
    """A search result: the offer, its best score over its vectors, and which vector scored it.

    A NamedTuple rather than a dataclass: searches build thousands per call.
    """

    offer_id: int
    score: float
    ordinal: int = 0


@dataclass(frozen=True)
class SearchEffort:
    """How hard a search looks, below what the store tuned it for (as qdrant-client's
    ``SearchParams(hnsw_ef=...)`` per query): `lists` caps the IVF lists probed (the tuned nprobe
    when that is lower; None: the tuned nprobe). The tuning aims at recall@10 against exact
    search, ties among a query's family of similar products included; a caller that needs only
    its near neighbours (grouping: the same product's offers) can ask for less. A flat (exact)
    index ignores it; a server-side engine maps it onto its own knob (HNSW ef, probes).

    `near`: only neighbours at cosine ``StoreOptions.near_cosine`` or above must be found; the
    store probes the lists its upgrade measured for ``near_recall_target`` of them (an index
    built before that was measured: as tuned), `lists` still capping them."""

    lists: int | None = None
    near: bool = False

    def __post_init__(self) -> None:
        if self.lists is not None and (
            not isinstance(self.lists, int) or isinstance(self.lists, bool) or self.lists < 1
        ):
            raise ValueError(f"lists must be a positive int or None, got {self.lists!r}")


@dataclass(frozen=True)
class SearchFilters:
    """Restrict a search to offers matching every given field (None = no restriction)."""

    shops: tuple[str, ...] | None = None
    currency: str | None = None
    availability: str | None = None
    category: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
