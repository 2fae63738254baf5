"""Run the crawl's stages over offer feeds: validation, photos, specs, embedding, upsert, grouping.

`ingest(paths, index_dir, options)` reads each feed (`formats`), checks each offer (`offers`,
`stages.missing_fields`), fetches its photos (`images`), reads specs from its text and photos,
embeds it, upserts it into the `ProductStore` at `index_dir` and groups it, chunk by chunk, then
regroups the products its offers touched, as a crawl does when it ends. The store keys an offer
by shop and URL (then shop and GTIN), so running the same feed twice updates its offers (one
more price-history point each) and never adds them twice. A row that cannot be used is counted
by reason with its line number and the rest of the file goes on; every offer stored is durable
when its part of the chunk's batched upsert returns (`batches.embed_and_store_many`), so an
interrupted run loses nothing it reported stored; a record the store refuses is dropped with
its reason and the rest of its chunk is stored."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cumpair.embed import BatchEmbedder, EncoderSet
from cumpair.embed.reindex import spaces_for
from cumpair.index import ProductStore, StoreOptions
from cumpair.ingest.batches import embed_and_store_many
from cumpair.ingest.formats import FeedProblem, Format, detect_format, read_feed
from cumpair.ingest.images import ImageOptions, fetch_images
from cumpair.ingest.offers import OfferRejected, offer_from_fields
from cumpair.ingest.stages import missing_fields, offer_specs, regroup_store
from cumpair.progress import progress
from cumpair.search.products import ProductGroups
from cumpair.vision.ocr_types import OcrOptions

logger = logging.getLogger(__name__)

#: Examples (file:line: why) kept per drop reason for the summary; the counts are complete.
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class IngestOptions:
    """How `ingest` treats a feed; the CLI builds one from its flags (`cli.options_from_args`).

    `shop` names the shop of every offer (else the row's `shop`, else its URL's host);
    `allow_missing_price` keeps offers with no price as evidence for grouping; `fmt` forces a
    format for every file; `images_dir` is where photos go (default ``<index>/images``, the
    crawl's); `ocr` reads specs from up to `ocr_images` photos per offer (the crawl's
    SPECS_MAX_IMAGES_PER_ITEM), `colors` dominant colours from the main one; `workers` threads
    fetch photos and run OCR; `chunk` offers go through each stage together;
    `progress_every` rows between progress lines.
    """

    shop: str | None = None
    allow_missing_price: bool = False
    fmt: Format | None = None
    images_dir: Path | None = None
    fetch_images: bool = True
    image: ImageOptions = field(default_factory=ImageOptions)
    ocr: bool = True
    ocr_options: OcrOptions = field(default_factory=lambda: OcrOptions(max_variants=2))
    ocr_images: int = 2
    colors: int = 3
    workers: int = 4
    batch_size: int = 32
    chunk: int = 256
    progress_every: int = 1000
    store: StoreOptions = field(default_factory=StoreOptions)

    def __post_init__(self) -> None:
        if min(self.workers, self.batch_size, self.chunk, self.progress_every) < 1:
            raise ValueError("workers, batch_size, chunk and progress_every must be at least 1")


@dataclass
class IngestReport:
    """What `ingest` did; `summary()` is what the CLI prints."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    new: int = 0
    updated: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter = field(default_factory=Counter)
    images: int = 0
    image_errors: list[str] = field(default_factory=list)
    products: int = 0
    grouped: int = 0
    seconds: float = 0.0

    @property
    def stored(self) -> int:
        return self.new + self.updated

    def drop(self, reason: str, where: str, message: str) -> None:
        self.dropped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}: {message}")

    def summary(self) -> str:
        lines = [
            f"ingested {len(self.files)} file(s) in {self.seconds:.1f} s: {self.rows} rows, "
            f"{self.stored} offers stored ({self.new} new, {self.updated} updated), "
            f"{sum(self.dropped.values())} dropped"
        ]
        for reason, count in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  dropped {count} x {reason}")
            lines.extend(f"    {example}" for example in self.examples.get(reason, []))
        for note, count in sorted(self.notes.items()):
            lines.append(f"  kept {count} x {note}")
        lines.append(f"  photos stored: {self.images}; failed: {len(self.image_errors)}")
        lines.extend(f"    {error}" for error in self.image_errors[:MAX_EXAMPLES])
        lines.append(f"  products: {self.products} ({self.grouped} offers grouped)")
        return "\n".join(lines)


@dataclass
class _Offer:
    where: str  # file:line
    item: dict[str, Any]
    images: list[str] = field(default_factory=list)  # paths under the images directory
    sources: list[str] = field(default_factory=list)  # the feed's reference of each photo
    image_errors: list[str] = field(default_factory=list)


def ingest(
    paths: Sequence[str | os.PathLike[str]],
    index_dir: str | os.PathLike[str],
    options: IngestOptions = IngestOptions(),
    *,
    encoders: EncoderSet | Callable[[], EncoderSet],
) -> IngestReport:
    """Ingest the feeds at `paths` into the store at `index_dir` (created if absent).

    `encoders` may be a loader, called once every feed has been opened and its format is known.
    Raises `FeedError` for a feed that cannot be read at all (before anything is written),
    `StoreError` when the store cannot be opened (a crawl is writing it, other encoders built
    it).
    """
    started = time.monotonic()
    feeds = [(Path(p), detect_format(p, options.fmt)) for p in paths]
    index = Path(index_dir)
    images_dir = options.images_dir or index / "images"
    encoder_set = encoders() if callable(encoders) else encoders
    report = IngestReport(files=[str(p) for p, _ in feeds])
    touched: set[int] = set()
    store = ProductStore.open(index, spaces_for(encoder_set), options.store)
    try:
        with (
            ProductGroups.open(index) as groups,
            BatchEmbedder(encoder_set, batch_size=options.batch_size, max_wait=0.05) as embedder,
            ThreadPoolExecutor(options.workers, "cumpair-ingest") as pool,
        ):
            for path, fmt in feeds:
                logger.info("ingest: reading %s (%s)", path, fmt)
                for chunk in _chunks(_offers(path, fmt, options, report), options.chunk):
                    prepare = partial(
                        _prepare, base_dir=path.parent, images_dir=images_dir, options=options
                    )
                    prepared = list(pool.map(prepare, chunk))
                    touched |= _store_chunk(store, groups, embedder, prepared, images_dir, report)
                    store.maybe_flush()
            store.flush()
            regroup_store(store, groups, touched)
            report.products, report.grouped = groups.count()
    finally:
        store.close()
    report.seconds = time.monotonic() - started
    logger.info("ingest: done, %d offers stored in %.1f s", report.stored, report.seconds)
    return report


def _offers(
    path: Path, fmt: Format, options: IngestOptions, report: IngestReport
) -> Iterator[_Offer]:
    """The usable offers of one feed; the others are counted in `report` with their line."""
    last_progress = time.monotonic()
    for entry in progress(read_feed(path, fmt), desc=f"ingest {path.name}", unit="row"):
        report.rows += 1
        if report.rows % options.progress_every == 0:
            now = time.monotonic()
            logger.info(
                "ingest: %d rows read, %d offers stored, %d dropped (%.0f rows/s)",
                report.rows, report.stored, sum(report.dropped.values()),
                options.progress_every / max(now - last_progress, 1e-9),
            )  # fmt: skip
            last_progress = now
        where = f"{path.name}:{entry.line}"
        if isinstance(entry, FeedProblem):
            report.drop(entry.reason, where, entry.message)
            continue
        try:
            item, notes = offer_from_fields(entry.fields, shop=options.shop)
        except OfferRejected as exc:
            report.drop(exc.reason, where, str(exc))
            continue
        missing = missing_fields(item, allow_missing_price=options.allow_missing_price)
        if missing:
            report.drop(f"missing_{missing[0]}", where, f"no usable {', '.join(missing)}")
            continue
        if item["price"] is None:
            notes.append("price_unknown")
        report.notes.update(notes)
        yield _Offer(where, item)


def _prepare(offer: _Offer, base_dir: Path, images_dir: Path, options: IngestOptions) -> _Offer:
    """Pool thread: the offer's photos fetched, its specs read from text and photos."""
    item = offer.item
    if options.fetch_images and item["image_urls"]:
        fetched = fetch_images(item["image_urls"], images_dir, base_dir, options.image)
        offer.images, offer.sources, offer.image_errors = (
            fetched.paths,
            fetched.sources,
            fetched.errors,
        )
    photos = list(zip(offer.sources, [images_dir / p for p in offer.images], strict=True))
    item["specs"], _ = offer_specs(
        item,
        photos,
        ocr=options.ocr,
        ocr_images=options.ocr_images,
        ocr_options=options.ocr_options,
        colors=options.colors,
        on_error=lambda path, exc: logger.warning(
            "ingest: %s: photo %s not read: %s", offer.where, path.name, exc
        ),
    )
    return offer


def _store_chunk(
    store: ProductStore,
    groups: ProductGroups,
    embedder: BatchEmbedder,
    chunk: list[_Offer],
    images_dir: Path,
    report: IngestReport,
) -> set[int]:
    """Embed a chunk's offers together, upsert them in one durable batch and group each;
    returns their offer ids."""
    batch = []
    for offer in chunk:
        report.image_errors += [f"{offer.where}: {error}" for error in offer.image_errors]
        batch.append((offer.item, [str(images_dir / p) for p in offer.images]))
    stored: set[int] = set()
    outcomes = embed_and_store_many(store, groups, embedder, batch)
    for offer, outcome in zip(chunk, outcomes, strict=True):
        for position, reason in outcome.vectors.image_errors.items():
            report.image_errors.append(f"{offer.where}: {offer.images[position]}: {reason}")
        if outcome.result is None:
            report.drop("invalid_offer", offer.where, str(outcome.error))
            continue
        stored.add(outcome.result.offer_id)
        report.images += len(offer.images)
        if outcome.result.created:
            report.new += 1
        else:
            report.updated += 1
    return stored


def _chunks(offers: Iterable[_Offer], size: int) -> Iterator[list[_Offer]]:
    chunk: list[_Offer] = []
    for offer in offers:
        chunk.append(offer)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


__all__ = ["MAX_EXAMPLES", "IngestOptions", "IngestReport", "ingest"]
