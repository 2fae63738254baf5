"""Several framings of one query photo, each embedded with the indexed photos' encoder.

A shopper's photo is one query, so search can afford more model work on it than the crawl spends
per item: besides the photo as taken, a centre crop (the product in the middle of a wider shot)
and the four corner windows (a small product somewhere on a table or floor). The product framed
alone (`cumpair.embed.framing`, only when it finds one with confidence) can be added with
`framed=True`; it is off by default because it did not change recall on real photographs
(recall@1 0.913 with and without it, seed 7 of bench/eval_retrieval.py) and costs a view.
Per offer, the photo as taken stays the anchor: the other views may lift its score by
`VIEW_GAIN` of what their best (less its handicap) exceeds it by, never replace it. A part of
the shot can show something else entirely (a second product lying in a corner matches a corner
window at cosine 0.95), and taking the best view outright let it win over the product the photo
is of (real-photo occlusion recall@1 0.82 -> 0.39). Gain and handicaps were chosen on real
photographs (bench/eval_retrieval.py --sweep, seed 7; seed 11 confirmed them). Only the
query side changes: the indexed vectors do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cumpair.embed.base import ImageEncoder
from cumpair.embed.framing import framed_product
from cumpair.vision.images import load_image

#: Centre crops, as shares of each side.
CENTRE_CROPS: tuple[float, ...] = (0.6,)
#: Side of the corner windows (share of each side); None: no windows.
WINDOW_CROP: float | None = 0.6
#: Side (pixels) the framed product is rendered at: the encoder's input size.
FRAMED_SIZE = 224
#: Cosine taken off each kind of view's score before views are compared.
FRAMED_HANDICAP = 0.0
CENTRE_HANDICAP = 0.02
WINDOW_HANDICAP = 0.04
#: Share of the best other view's excess over the photo's own score that is added to it.
VIEW_GAIN = 0.4


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
    framed: bool = False,
    centre_crops: tuple[float, ...] = CENTRE_CROPS,
    window_crop: float | None = WINDOW_CROP,
) -> list[QueryView]:
    """The photo as given, first; then the framed product (with `framed`, if one is found),
    centre crops and the four corner windows."""
    image = image.convert("RGB")
    width, height = image.size
    views = [QueryView("full", image)]
    if framed:
        product = framed_product(image, FRAMED_SIZE)
        if product is not None:
            views.append(QueryView("framed", product, FRAMED_HANDICAP))
    for share in centre_crops:
        box = _box(width, height, share, 0.5, 0.5)
        views.append(QueryView(f"centre {share:g}", image.crop(box), CENTRE_HANDICAP))
    if window_crop:
        for row in (0, 1):
            for col in (0, 1):
                box = _box(width, height, window_crop, col, row)
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
    hit_lists: list[list[tuple[int, float]]], views: list[QueryView], gain: float = VIEW_GAIN
) -> list[tuple[int, float]]:
    """(key, score) hits of each view merged, best first: per key the first view's (the photo
    as taken) score plus `gain` times what the best other view's score, less its handicap,
    exceeds it by. `hit_lists[i]` are the hits of `views[i]`; a key the first view did not
    return is given that view's lowest returned score (an upper bound of its own)."""
    if len(hit_lists) != len(views):
        raise ValueError(f"{len(hit_lists)} hit lists for {len(views)} views")
    if not hit_lists:
        return []
    anchor = {key: float(score) - views[0].handicap for key, score in hit_lists[0]}
    floor = min(anchor.values(), default=0.0)
    best: dict[int, float] = {}
    for hits, view in zip(hit_lists[1:], views[1:], strict=True):
        for key, score in hits:
            score = float(score) - view.handicap
            if score > best.get(key, -np.inf):
                best[key] = score
    merged = dict(anchor)
    for key, score in best.items():
        own = anchor.get(key, floor)
        merged[key] = own + gain * max(0.0, score - own)
    return sorted(merged.items(), key=lambda hit: (-hit[1], hit[0]))


def _box(width: int, height: int, share: float, x: float, y: float) -> tuple[int, int, int, int]:
    """A window `share` of each side, placed at relative position (x, y) in [0, 1]."""
    cw, ch = max(1, round(width * share)), max(1, round(height * share))
    left, top = round((width - cw) * x), round((height - ch) * y)
    return left, top, left + cw, top + ch
