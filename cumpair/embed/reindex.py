"""Rebuild a product store with the current encoders, keeping every offer and its price history.

A store records which encoder made each vector space and refuses to open with another one;
`reindex` is the way forward after an encoder change. It re-embeds the stored photos and
product texts into a new directory, carries the store's sub-directories (photos, model exports)
over as hard links, regroups products, then swaps the directories, keeping the old store as a
backup. It holds the old store's writer lock throughout, so no crawl writes into a store that is
about to be replaced. Plain library: never imports Scrapy.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cumpair.embed.batch import BatchEmbedder, ItemVectors
from cumpair.embed.registry import EncoderSet
from cumpair.embed.text import product_text
from cumpair.index import (
    OfferRecord,
    OfferStore,
    PricePoint,
    ProductStore,
    SpaceSpec,
    StoreError,
    StoreLockedError,
    StoreOptions,
    is_store_file,
    migrate_locked,
    store_exists,
)
from cumpair.index.locks import WriterLock
from cumpair.progress import progress
from cumpair.search.products import ProductGroups
from cumpair.search.store_scan import first_vectors, scan_offers

logger = logging.getLogger(__name__)

#: Offers embedded and written per store transaction: bounds memory on large stores.
CHUNK_OFFERS = 256
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>
#: Failure messages kept for the summary (the counts are always complete).
MAX_FAILURE_EXAMPLES = 10


class ReindexError(StoreError):
    """The store cannot be rebuilt as asked (no store, target not empty, offers would merge)."""


@dataclass
class ReindexReport:
    """What `reindex` did; `summary()` is the text the CLI prints."""

    source: Path
    store: Path  # where the rebuilt store is now
    backup: Path | None  # where the old store was moved (None with an explicit output dir)
    old_spaces: dict[str, SpaceSpec]
    new_spaces: dict[str, SpaceSpec]
    encoders: str
    offers: int = 0
    price_points: int = 0
    vectors: dict[str, int] = field(default_factory=dict)
    images_missing: int = 0
    images_unreadable: int = 0
    offers_without_text: int = 0
    offers_renumbered: int = 0
    products: int = 0
    dropped_spaces: tuple[str, ...] = ()
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def image_failures(self) -> int:
        return self.images_missing + self.images_unreadable

    def summary(self) -> str:
        lines = [
            f"reindexed {self.offers} offers ({self.price_points} price points) "
            f"from {self.source} in {self.seconds:.1f} s",
            f"  {self.encoders}",
        ]
        for name, new in self.new_spaces.items():
            old = self.old_spaces.get(name)
            before = _describe(old) if old else "(none)"
            count = self.vectors.get(name, 0)
            lines.append(f"  {name}: {before} -> {_describe(new)}: {count} vectors")
        for name in self.dropped_spaces:
            lines.append(f"  {name}: {_describe(self.old_spaces[name])} -> dropped (no encoder)")
        lines.append(
            f"  image failures: {self.images_missing} missing, {self.images_unreadable} "
            f"unreadable; offers without text: {self.offers_without_text}"
        )
        lines.extend(f"    {message}" for message in self.failures)
        if self.offers_renumbered:
            lines.append(f"  offer ids renumbered: {self.offers_renumbered} (gaps closed)")
        lines.append(f"  products: {self.products} (regrouped)")
        where = f"  store: {self.store}"
        if self.backup is not None:
            where += f" (old store kept at {self.backup})"
        lines.append(where)
        return "\n".join(lines)


def _describe(spec: SpaceSpec) -> str:
    return f"{spec.encoder}@{spec.version or '?'} ({spec.dim}-d)"


def spaces_for(encoders: EncoderSet) -> dict[str, SpaceSpec]:
    """The vector spaces a crawl with `encoders` writes (as the index pipeline declares them)."""
    image, text = encoders.image_info, encoders.text_info
    return {
        "image": SpaceSpec(image.dim, image.name, image.version),
        "text": SpaceSpec(text.dim, text.name, text.version),
    }


def reindex(
    path: str | os.PathLike[str],
    encoders: EncoderSet | Callable[[], EncoderSet],
    *,
    out: str | os.PathLike[str] | None = None,
    images_root: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    lock_timeout_s: float = 0.0,
    chunk_offers: int = CHUNK_OFFERS,
) -> ReindexReport:
    """Re-embed the store at `path` with `encoders` into a new store; returns what it did.

    Without `out`, the new store replaces `path` and the old one is renamed to
    ``<path>.old-<UTC timestamp>``; with `out`, the new store is written there (a new or empty
    directory) and `path` is left as it was. `encoders` may be a loader, called once the lock is
    held, so a locked store is refused before any model loads. Photo paths in records are used
    as stored (absolute, or relative to the working directory), else relative to `images_root`
    (default ``<path>/images``), else by the longest tail of their path found there. A missing
    or unreadable photo loses only its vector.

    Raises `StoreLockedError` when a crawl holds the store, `ReindexError` when the store or
    the output directory is unusable; the old store is untouched when anything fails.
    """
    started = time.monotonic()
    source = Path(path)
    if not store_exists(source):
        raise ReindexError(f"no product store at {source}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(out) if out is not None else None
    if target is not None:
        if target.resolve() == source.resolve() or source.resolve() in target.resolve().parents:
            raise ReindexError(f"the output directory {target} must be outside the store {source}")
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise ReindexError(f"output directory {target} exists and is not empty")
        build = target
    else:
        build = _free_name(source, f"reindex-{stamp}")
    images = Path(images_root) if images_root is not None else source / "images"

    lock = WriterLock(source)
    try:
        lock.acquire(lock_timeout_s)
    except StoreLockedError:
        raise StoreLockedError(
            f"{source} is being written by another process ({lock.owner()}), e.g. a crawl; "
            "run reindex when it has finished"
        ) from None
    try:
        # A store from an older version is migrated in place first (we hold its writer lock).
        migrate_locked(source)
        encoder_set = encoders() if callable(encoders) else encoders
        created = not build.exists()
        try:
            report = _rebuild(source, build, encoder_set, images, batch_size, chunk_offers)
            _carry_files(source, build)
        except BaseException:
            if created:
                shutil.rmtree(build, ignore_errors=True)
            else:  # an empty --out directory the caller made: leave it empty again
                for entry in build.iterdir():
                    _remove(entry)
            raise
        if target is None:
            report.backup = _swap(source, build, stamp)
            report.store = source
        else:
            report.store = target
    finally:
        lock.release()
    report.seconds = time.monotonic() - started
    logger.info("reindex of %s done: %d offers in %.1f s", source, report.offers, report.seconds)
    return report


def _rebuild(
    source: Path,
    build: Path,
    encoders: EncoderSet,
    images: Path,
    batch_size: int,
    chunk_offers: int,
) -> ReindexReport:
    """Embed every offer of `source` and write it, with its history, into a store at `build`."""
    new_spaces = spaces_for(encoders)
    old = ProductStore.open(source, readonly=True)
    try:
        old_spaces = old.spaces()
        offers = scan_offers(old)
        report = ReindexReport(
            source=source,
            store=build,
            backup=None,
            old_spaces=old_spaces,
            new_spaces=new_spaces,
            encoders=encoders.describe(),
            dropped_spaces=tuple(sorted(set(old_spaces) - set(new_spaces))),
        )
        # Offers are copied one to one: near-duplicate merging would fold distinct offers
        # whose new vectors happen to be close.
        options = StoreOptions(duplicate_threshold=None, lock_timeout_s=0)
        with (
            ProductStore.open(build, new_spaces, options) as new,
            BatchEmbedder(encoders, batch_size=batch_size, max_wait=0.05) as embedder,
        ):
            with progress(desc="reindex", total=len(offers), unit="offer") as bar:
                for chunk in _chunks(offers, chunk_offers):
                    vectors = _embed_chunk(embedder, chunk, images, report)
                    _write_chunk(old, new, chunk, vectors, report)
                    bar.update(len(chunk))
                    logger.info("reindex: %d/%d offers written", report.offers, len(offers))
            report.vectors = {name: new.count(name) for name in new_spaces}
            with ProductGroups.open(build) as groups:  # search needs products beside the store
                report.products, _ = groups.regroup(scan_offers(new), first_vectors(new))
    finally:
        old.close()
    return report


def _embed_chunk(
    embedder: BatchEmbedder, chunk: Sequence[OfferRecord], images: Path, report: ReindexReport
) -> list[ItemVectors]:
    futures = []
    for record in chunk:
        paths = []
        for name in record.image_paths:
            found = _resolve_image(name, images)
            if found is None:
                report.images_missing += 1
                _note(report, f"offer {record.id}: photo {name} not found")
            else:
                paths.append(found)
        text = product_text(dataclasses.asdict(record))
        futures.append(embedder.submit(paths, text, key=record.url))
    embedder.flush()
    results = []
    for record, future in zip(chunk, futures, strict=True):
        vectors = future.result()  # a model failure aborts the rebuild: nothing is swapped
        for reason in vectors.image_errors.values():
            report.images_unreadable += 1
            _note(report, f"offer {record.id}: {reason}")
        if vectors.text_vector is None:
            report.offers_without_text += 1
        results.append(vectors)
    return results


def _write_chunk(
    old: OfferStore,
    new: OfferStore,
    chunk: Sequence[OfferRecord],
    vectors: Sequence[ItemVectors],
    report: ReindexReport,
) -> None:
    """Replay each offer's price history into `new`, the vectors with its first point.

    The store's only writer call is `upsert`, which appends one history row per call; replaying
    the points in order reproduces the history, ``first_seen`` and ``last_seen`` exactly.
    """
    items: list[tuple[OfferRecord, dict[str, np.ndarray]]] = []
    spans: list[tuple[OfferRecord, int]] = []
    for record, item_vectors in zip(chunk, vectors, strict=True):
        space_vectors: dict[str, np.ndarray] = {}
        if len(item_vectors.image_positions):
            space_vectors["image"] = item_vectors.image_vectors
        if item_vectors.text_vector is not None:
            space_vectors["text"] = item_vectors.text_vector
        replay = list(_replay(record, old.price_history(record.id)))
        spans.append((record, len(replay)))
        items.append((replay[0], space_vectors))
        items.extend((point, {}) for point in replay[1:])
    results = iter(new.upsert_many(items))
    for record, count in spans:
        mine = [next(results) for _ in range(count)]
        if not mine[0].created or any(r.offer_id != mine[0].offer_id for r in mine):
            raise ReindexError(
                f"offer {record.id} ({record.shop} {record.url}) would merge into offer "
                f"{mine[0].offer_id} of the new store (same shop and GTIN); fix the old store "
                "first (remove the duplicate offer)"
            )
        report.offers += 1
        report.price_points += count
        report.offers_renumbered += mine[0].offer_id != record.id


def _replay(record: OfferRecord, history: Sequence[PricePoint]) -> Iterator[OfferRecord]:
    """The upserts that recreate `record` with `history`: the record, priced as at each point."""
    fresh = replace(record, id=None, first_seen=None, last_seen=None, product_id=None)
    if not history:  # not written by upsert; keep the offer with its last sighting
        yield replace(fresh, seen_at=record.last_seen)
        return
    for point in history:
        yield replace(
            fresh,
            price=point.price,
            currency=point.currency,
            availability=point.availability,
            seen_at=point.seen_at,
        )


def _resolve_image(name: str, images: Path) -> str | None:
    """A stored photo path on disk: as stored (absolute or relative to the working directory),
    else relative to `images`, else its longest tail found under `images` (a store moved from
    another directory or machine: ``/old/place/images/full/<sha1>.jpg`` -> ``full/<sha1>.jpg``).
    """
    path = Path(name)
    if path.is_file():
        return str(path)
    parts = path.parts[1:] if path.is_absolute() else path.parts
    for start in range(len(parts)):
        candidate = images.joinpath(*parts[start:])
        if candidate.is_file():
            return str(candidate)
    return None


def _note(report: ReindexReport, message: str) -> None:
    logger.warning("reindex: %s", message)
    if len(report.failures) < MAX_FAILURE_EXAMPLES:
        report.failures.append(message)


def _chunks(records: Sequence[OfferRecord], size: int) -> Iterable[Sequence[OfferRecord]]:
    for start in range(0, len(records), max(1, size)):
        yield records[start : start + size]


def _carry_files(source: Path, build: Path) -> None:
    """Give the new store everything of the old directory that is not the store itself (photos,
    ONNX exports, a .gitkeep) as hard links, so photo paths keep resolving after the swap and
    the backup stays complete too."""
    for entry in source.iterdir():
        dest = build / entry.name
        if is_store_file(entry.name) or dest.exists() or dest.is_symlink():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), dest)
        elif entry.is_dir():
            shutil.copytree(entry, dest, symlinks=True, copy_function=_link_or_copy)
        elif entry.is_file():
            _link_or_copy(str(entry), str(dest))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not supported
        shutil.copy2(src, dst)


def _swap(source: Path, build: Path, stamp: str) -> Path:
    """Put `build` in place of `source` and move the old store aside; returns where it went.

    On Linux the two directories are exchanged in one step (``renameat2(RENAME_EXCHANGE)``), so
    `source` is never missing; elsewhere two renames, the first undone if the second fails.
    """
    backup = _free_name(source, f"old-{stamp}")
    if _exchange(source, build):
        os.rename(build, backup)  # `build` now names the old store
        return backup
    os.rename(source, backup)
    try:
        os.rename(build, source)
    except OSError:
        os.rename(backup, source)
        raise
    return backup


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths; False where the platform or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _free_name(source: Path, suffix: str) -> Path:
    candidate = source.with_name(f"{source.name}.{suffix}")
    n = 1
    while candidate.exists():
        candidate = source.with_name(f"{source.name}.{suffix}-{n}")
        n += 1
    return candidate


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


__all__ = ["ReindexError", "ReindexReport", "reindex", "spaces_for"]
