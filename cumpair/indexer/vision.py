"""The indexer's vision stage: specs read from each offer's photos, in worker processes when the
machine has the cores for them.

OCR is CPU work that holds the GIL in places, so on a machine with cores to spare the stage
runs in `processes` spawned worker processes (each loads its OCR engines once, on first use);
with ``processes=0`` it runs on the indexer's own threads. Either way it only computes: items
and photo bytes go in, specs come out, nothing is written, so the indexer's
acknowledge-when-durable contract does not depend on it. A worker process that dies breaks the
pool (`BrokenProcessPool`): the indexer stops with its entries unacknowledged, and they are
read again on restart.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from cumpair.ingest.stages import offer_specs
from cumpair.vision.ocr_types import OcrOptions

#: Cores below which the stage stays on threads: the embedder's model threads need them.
MIN_CORES_FOR_PROCESSES = 4


def default_vision_processes(cores: int | None = None) -> int:
    """Worker processes for the vision stage on a machine of `cores` (default
    `os.cpu_count()`): half of them from 4 cores on (the other half embeds), else 0."""
    cores = cores if cores is not None else os.cpu_count() or 1
    return cores // 2 if cores >= MIN_CORES_FOR_PROCESSES else 0


@dataclass(frozen=True)
class Photos:
    """One offer's readable photos: (source URL, bytes) in the shop's order."""

    item: dict[str, Any]
    photos: list[tuple[str | None, bytes]]


@dataclass(frozen=True)
class SpecsOutcome:
    """The offer's merged specs, where page and photos disagreed, and the photos not read."""

    specs: dict[str, Any]
    conflicts: list[dict[str, Any]]
    errors: list[str]


def read_specs(
    offer: Photos, *, ocr: bool, ocr_images: int, ocr_options: OcrOptions, colors: int
) -> SpecsOutcome:
    """The crawl's specs stage for one offer (`stages.offer_specs`); runs in any process."""
    errors: list[str] = []
    specs, conflicts = offer_specs(
        offer.item,
        offer.photos,
        ocr=ocr,
        ocr_images=ocr_images,
        ocr_options=ocr_options,
        colors=colors,
        on_error=lambda _, exc: errors.append(f"{type(exc).__name__}: {exc}"),
    )
    return SpecsOutcome(specs, [c.to_dict() for c in conflicts], errors)


class VisionStage:
    """Runs `read_specs` over batches of offers on `threads` threads or, when `processes` > 0
    and OCR is on, in that many spawned worker processes. Use as a context manager."""

    def __init__(
        self,
        *,
        processes: int,
        threads: int,
        ocr: bool,
        ocr_images: int,
        ocr_options: OcrOptions,
        colors: int,
    ) -> None:
        if processes < 0 or threads < 1:
            raise ValueError("vision processes must not be negative, threads at least 1")
        self.work = partial(read_specs, ocr=ocr, ocr_images=ocr_images,
                            ocr_options=ocr_options, colors=colors)  # fmt: skip
        self.processes = processes if ocr else 0  # without OCR the stage is text work only
        self._pool: Executor
        if self.processes:
            # spawn, not fork: the indexer has model and Redis threads a fork would copy mid-work
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.processes, mp_context=context)
        else:
            self._pool = ThreadPoolExecutor(threads, "cumpair-vision")

    def specs(self, offers: Sequence[Photos]) -> list[SpecsOutcome]:
        """Each offer's outcome, in order; raises what a worker raised (`BrokenProcessPool`
        when a worker process died)."""
        return list(self._pool.map(self.work, offers))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> VisionStage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["Photos", "SpecsOutcome", "VisionStage", "default_vision_processes", "read_specs"]
