"""A query photo embedded as taken and as its product alone, with the indexed photos' encoder.

A shopper's photo is one query, so search can afford a second forward pass on it: the photo's
own pass also gives the network's last feature map, and the product's box read off it
(`cumpair.embed.saliency`) is cropped and embedded as a second view. That view finds the
product small on a textured floor or table, where the whole photo's vector is mostly the floor
(real photos held out from the choice, bench/eval_retrieval.py: recall@1 of that kind 0.19
for the photo alone, 0.95 with this view and keypoints). It counts only when the photo as taken
matches nothing well (`own_match_trust`), and replaced a centre crop and four corner windows
(five passes), which matched a second product lying in a corner and cost occlusion recall.
Chosen on one half of the real photos, measured on the other: full search recall@1 0.942
against 0.776 for the plain pooled features (an earlier measurement of the five crops on a
draw of the same half: 0.887), with one pass for a photo that matches well and three at most.
A left-right flipped view did not help (recall@1 of the flip averaged in 0.773 against 0.770
alone) and is not made. The product framed alone on grey (`cumpair.embed.framing`, only when
it finds one with confidence) can be added with `framed=True`; it is off by default because it
did not change recall on real photographs.
Per offer the views' scores merge as `best_over_views` says. The first pass keeps the photo's
feature map, so the rest of the shot outside a box is one pooling away (`vector_outside`, what
`cumpair.search.verify.explain_away` searches). Only the query side changes: the indexed
vectors do not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from cumpair.embed.base import ActivationEncoder, FeatureMapEncoder, ImageEncoder
from cumpair.embed.framing import framed_product
from cumpair.embed.saliency import salient_box
from cumpair.vision.images import load_image

#: Cosine taken off each kind of view's score before views are compared.
FRAMED_HANDICAP = 0.0
SALIENT_HANDICAP = 0.0
#: Share of the best other view's excess over the photo's own score that is added to it, when
#: the photo as taken matches nothing well (`own_match_trust`).
VIEW_GAIN = 1.0
#: The photo's own best cosine at which the other views count half; they count fully
#: `TRUST_WIDTH / 2` below it and not at all as far above it.
OWN_MATCH_TRUSTED = 0.6
TRUST_WIDTH = 0.05

#: Called with a stage name when a stage of the query's work ends: "views" (resizing and
#: cropping the views) or "embedding" (the model's forward passes); see `SearchService`.
Lap = Callable[[str], None]


def _no_lap(stage: str) -> None:
    """A `Lap` that times nothing."""


@dataclass(frozen=True)
class QueryView:
    """One framing of a query photo: its name (for explanations), the image, and the cosine
    taken off its scores before they are compared with other views' (see module docstring)."""

    name: str
    image: Image.Image
    handicap: float = 0.0
    #: Embed the salient box of this view's own feature map rather than the view itself (when
    #: one is found): the salient view looks once more inside its box (`embed_views`).
    refine: bool = False


@dataclass(frozen=True)
class FirstPass:
    """A query photo after its own forward pass: the photo as taken (`view`, the picture
    decoded), its (1, dim) `vector`, the other views worth embedding if the photo's own hits
    call for them (`own_match_trust`), and its last feature map (channels x rows x cols) when
    the encoder gives one (`FeatureMapEncoder`), for `vector_outside`."""

    view: QueryView
    vector: np.ndarray
    others: tuple[QueryView, ...]
    feature_map: np.ndarray | None = None


def first_pass(
    encoder: ImageEncoder,
    image: object,
    *,
    views: bool = True,
    framed: bool = False,
    lap: Lap = _no_lap,
) -> FirstPass:
    """Embed the photo as taken and find its other views: with `views`, the product's salient
    box (encoders that give an activation map, `ActivationEncoder`, when one is found) and,
    with `framed`, the framed product (when one is found).

    `image` is anything `load_image` takes (bad input raises `ImageError` before any model
    work); a photo the encoder's preprocessing rejects raises its `ValueError`. `lap` is told
    when each stage ends.
    """
    picture = load_image(image).convert("RGB")
    full = QueryView("full", picture)
    prepared = encoder.prepare_image(picture)[None]
    lap("views")
    if not views:
        vector = encoder.embed_prepared(prepared)
        lap("embedding")
        return FirstPass(full, vector, ())
    others: list[QueryView] = []
    feature_map = None
    if isinstance(encoder, ActivationEncoder):
        if isinstance(encoder, FeatureMapEncoder):
            vector, maps = encoder.embed_with_feature_map(prepared)
            feature_map, activation = maps[0], maps.sum(axis=1)
        else:
            vector, activation = encoder.embed_with_activation(prepared)
        lap("embedding")
        box = salient_box(activation[0], picture.size)
        if box is not None:
            crop = picture.crop(box)
            others.append(QueryView("salient", crop, SALIENT_HANDICAP, refine=True))
    else:
        vector = encoder.embed_prepared(prepared)
        lap("embedding")
    if framed:
        # Rendered at the encoder's own input side where it has one (`input_side`: 320 for
        # EfficientNet-Lite0), so the view is not rendered small and upscaled again by the
        # encoder (it was rendered at 224 when the input was 224); else at the photo's scale.
        product = framed_product(picture, getattr(encoder, "input_side", None))
        if product is not None:
            others.append(QueryView("framed", product, FRAMED_HANDICAP))
    lap("views")
    return FirstPass(full, vector, tuple(others), feature_map)


def embed_views(
    encoder: ImageEncoder,
    views: tuple[QueryView, ...] | list[QueryView],
    lap: Lap = _no_lap,
) -> tuple[list[QueryView], np.ndarray]:
    """The `views` the encoder's preprocessing accepts (as embedded: a `refine` view becomes its
    own salient box when one is found) and their unit vectors; a rejected view (an odd crop
    with nothing in it) is skipped, not worth failing a query.

    A first box read off the whole photo's 10 x 10 map is coarse: a product small on a floor
    fills about a third of it. Its own map, at the encoder's full resolution, finds the product
    inside it (real photos held in, small on a texture, recall@1 without keypoints, measured on
    the 7 x 7 map of a 224-px input: 0.74 with the first box, 0.85 with the box inside it).
    `lap` is told when each stage ends."""
    kept, vectors, pixels, batched = [], [], [], []
    for view in views:
        try:
            prepared = encoder.prepare_image(view.image)
        except ValueError:
            continue
        if view.refine and isinstance(encoder, ActivationEncoder):
            lap("views")
            vector, activation = encoder.embed_with_activation(prepared[None])
            lap("embedding")
            box = salient_box(activation[0], view.image.size)
            if box is None:  # nothing more inside: this pass's vector is the view's
                kept.append(view)
                vectors.append(vector)
                continue
            view = replace(view, image=view.image.crop(box), refine=False)
            try:
                prepared = encoder.prepare_image(view.image)
            except ValueError:
                continue
        batched.append(view)
        pixels.append(prepared)
    lap("views")
    if pixels:
        kept += batched
        vectors.append(encoder.embed_prepared(np.stack(pixels)))
        lap("embedding")
    if not kept:
        return [], np.zeros((0, encoder.dim), dtype=np.float32)
    return kept, np.concatenate(vectors)


def embed_query(
    encoder: ImageEncoder, image: object, *, views: bool = True, framed: bool = False
) -> tuple[list[QueryView], np.ndarray]:
    """Every view of the query that was embedded (the photo as taken first) and their unit
    vectors: `first_pass` and `embed_views` of its other views, whatever its own hits."""
    start = first_pass(encoder, image, views=views, framed=framed)
    kept, vectors = embed_views(encoder, start.others)
    return [start.view, *kept], np.concatenate([start.vector, vectors])


def vector_outside(
    feature_map: np.ndarray, box: tuple[float, float, float, float]
) -> np.ndarray | None:
    """The (1, channels) unit vector of a photo's feature map pooled over the cells that do not
    touch `box` (left, top, right, bottom as shares 0..1 of the photo's width and height): the
    rest of the shot, with no second forward pass. None when every cell touches the box.

    What `cumpair.search.verify.explain_away` searches for when a known photo is verified in
    a corner of the shot."""
    _, rows, cols = feature_map.shape
    left, top, right, bottom = box
    keep = np.ones((rows, cols), dtype=bool)
    keep[
        max(0, int(np.floor(top * rows))) : int(np.ceil(bottom * rows)),
        max(0, int(np.floor(left * cols))) : int(np.ceil(right * cols)),
    ] = False
    if not keep.any():
        return None
    pooled = feature_map[:, keep].mean(axis=1)
    norm = float(np.linalg.norm(pooled))
    if norm <= 0:
        return None
    return (pooled / norm)[None].astype(np.float32)


def own_match_trust(own_best: float) -> float:
    """How much the other views may lift scores (0..1), given the photo's own best score.

    A photo whose own vector already matches a known photo well is of that product, or of one
    with another known product in a corner of the shot: its salient box may be that other
    product, an exact copy of a known photo, and taking it at its word cost occlusion recall
    (real photos, bench/eval_retrieval.py --split in: 0.83 with this, 0.74 without). A photo
    that matches nothing well (a product small on a floor: own best cosine about 0.42 where an
    occluded product's is 0.76) is what the other views are for.
    """
    return min(1.0, max(0.0, (OWN_MATCH_TRUSTED - own_best) / TRUST_WIDTH + 0.5))


def best_over_views(
    hit_lists: list[list[tuple[int, float]]], views: list[QueryView], gain: float = VIEW_GAIN
) -> list[tuple[int, float]]:
    """(key, score) hits of each view merged, best first: per key the first view's (the photo
    as taken) score plus `gain` times `own_match_trust` of the first view's best score times
    what the best other view's score, less its handicap, exceeds it by. `hit_lists[i]` are the
    hits of `views[i]`; a key the first view did not return is given that view's lowest
    returned score (an upper bound of its own)."""
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
    gain *= own_match_trust(max(anchor.values(), default=0.0))
    for key, score in best.items():
        own = anchor.get(key, floor)
        merged[key] = own + gain * max(0.0, score - own)
    return sorted(merged.items(), key=lambda hit: (-hit[1], hit[0]))
