"""Several framings of one query photo, each embedded with the indexed photos' encoder.

A shopper's photo is one query, so search can afford more model work on it than the crawl spends
per item: the photo is also tried turned (the indexed vectors already average ±15°; a query
tilted further falls between), cut to centre crops, and cut to a grid of windows (a product held
in front of a busy scene is somewhere in it). Search then keeps, per offer, the best score over
the views, each view's score less its handicap: the more a view departs from the photo as taken,
the more likely it matches a wrong product by chance (windows alone, unhandicapped, lower
recall@1 from 0.875 to 0.83; handicapped 0.02 they raise it, see bench/eval_retrieval.py). Only
the query side changes: the indexed vectors and the encoder version do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cumpair.embed.base import ImageEncoder
from cumpair.vision.images import load_image

#: Extra turns of the whole query photo, degrees (the encoder adds 0 and ±15 to each view).
QUERY_ROTATIONS: tuple[float, ...] = (-16.0, -8.0, 8.0, 16.0)
#: Centre crops, as shares of each side.
CENTRE_CROPS: tuple[float, ...] = (0.8, 0.6)
#: Side of the grid windows (share of each side) and windows per row and column.
GRID_CROP = 0.55
GRID_STEPS = 3
#: Cosine taken off each kind of view's score before views are compared (chosen on the demo
#: catalog of seed 7, confirmed on seed 11: bench/eval_retrieval.py --sweep).
TURN_HANDICAP = 0.0
CENTRE_HANDICAP = 0.01
WINDOW_HANDICAP = 0.02


@dataclass(frozen=True)
class QueryView:
    """One framing of a query photo: its name (for explanations), the image, and the cosine
    taken off its scores before they are compared with other views' (see module docstring)."""

    name: str
    image: Image.Image
    handicap: float = 0.0


def query_views(
    image: Image.Image,
    *,
    rotations: tuple[float, ...] = QUERY_ROTATIONS,
    centre_crops: tuple[float, ...] = CENTRE_CROPS,
    grid_crop: float | None = GRID_CROP,
) -> list[QueryView]:
    """The photo as given, first; then turned, centre-cropped and cut to grid windows."""
    image = image.convert("RGB")
    width, height = image.size
    views = [QueryView("full", image)]
    fill = _border_colour(image)
    for angle in rotations:
        turned = image.rotate(angle, Image.Resampling.BILINEAR, fillcolor=fill)
        views.append(QueryView(f"turned {angle:+g}°", turned, TURN_HANDICAP))
    for share in centre_crops:
        box = _box(width, height, share, 0.5, 0.5)
        views.append(QueryView(f"centre {share:g}", image.crop(box), CENTRE_HANDICAP))
    if grid_crop:
        for row in range(GRID_STEPS):
            for col in range(GRID_STEPS):
                where = (col / (GRID_STEPS - 1), row / (GRID_STEPS - 1))
                box = _box(width, height, grid_crop, *where)
                views.append(QueryView(f"window {row},{col}", image.crop(box), WINDOW_HANDICAP))
    return views


def embed_query(
    encoder: ImageEncoder, image: object, views: list[QueryView] | None = None
) -> tuple[list[QueryView], np.ndarray]:
    """The query's views that were embedded (the full photo first) and their unit vectors.

    `image` is anything `load_image` takes (bad input raises `ImageError` before any model
    work). A view the encoder's preprocessing rejects is skipped; the full photo never is.
    """
    picture = load_image(image)
    views = views if views is not None else query_views(picture)
    kept, pixels = [], []
    for view in views:
        try:
            prepared = encoder.prepare_image(view.image)
        except ValueError:
            if not kept:  # the full photo itself: let the caller see why
                raise
            continue  # an odd crop (nothing framed in it) is not worth failing the query for
        kept.append(view)
        pixels.append(prepared)
    return kept, encoder.embed_prepared(np.stack(pixels))


def best_over_views(
    hit_lists: list[list[tuple[int, float]]], views: list[QueryView]
) -> list[tuple[int, float]]:
    """(key, score) hits of each view merged: per key the best score less its view's handicap,
    best first. `hit_lists[i]` are the hits of `views[i]`."""
    if len(hit_lists) != len(views):
        raise ValueError(f"{len(hit_lists)} hit lists for {len(views)} views")
    best: dict[int, float] = {}
    for hits, view in zip(hit_lists, views, strict=True):
        for key, score in hits:
            score = float(score) - view.handicap
            if score > best.get(key, -np.inf):
                best[key] = score
    return sorted(best.items(), key=lambda hit: (-hit[1], hit[0]))


def _border_colour(image: Image.Image) -> tuple[int, ...]:
    """Median colour of the frame's edge: what the corners a rotation uncovers are filled with,
    so framing sees them as backdrop rather than as an object's edge."""
    pixels = np.asarray(image)
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))


def _box(width: int, height: int, share: float, x: float, y: float) -> tuple[int, int, int, int]:
    """A window `share` of each side, placed at relative position (x, y) in [0, 1]."""
    cw, ch = max(1, round(width * share)), max(1, round(height * share))
    left, top = round((width - cw) * x), round((height - ch) * y)
    return left, top, left + cw, top + ch
