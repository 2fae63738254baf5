"""The vectors a shop photo is indexed under: the photo as taken and a close-up of its middle.

A shopper's close-up (the print of a shirt, the face of a watch) shows part of what the shop
photographed, at a larger scale: its vector is far from the whole photo's, and no query-side
view can zoom out. So each indexed photo also stores the vector of its centre `GALLERY_CROP`
of each side, as one more row of its offer in the image space; the store scores an offer by
its best row, so a query matches whichever of the two it resembles. Chosen on the parameter
half of the real photos (bench/eval_retrieval.py --split in, against no crop, same run):
close-up recall@1 of the indexed vector 0.946 -> 1.000 and of the full search 0.946 ->
1.000; full search 0.950 -> 0.959; the indexed vector alone 0.784 -> 0.788 (a product small
on a texture matches a zoomed-in texture more often: 0.189 -> 0.162 alone, the full search
unchanged at 0.919); crops of 50% or 70% fixed fewer close-ups and cost perspective shots;
a 50% and a 70% crop both, or the middle cells of the photo's own feature map (no second
pass), helped less or not at all. It costs the indexing one more forward pass per photo and
the image space twice the rows; ordinal 0 of an offer stays its main photo (what grouping
compares), the crops follow the photos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from cumpair.embed.base import ImageEncoder, ImageInput
from cumpair.vision.images import load_image

#: Share of each side of a photo kept in its close-up vector (centred).
GALLERY_CROP = 0.6
#: Recorded in the image space's version (`cumpair.embed.reindex.spaces_for`): a store indexed
#: without the crops is stale, and `cumpair reindex --if-stale` adds them.
GALLERY_LAYOUT = f"crop{GALLERY_CROP:g}"
#: Vectors stored per photo: the photo, its close-up.
VIEWS_PER_PHOTO = 2
# JPEGs are decoded at a reduced scale that keeps the close-up at least twice the encoders'
# 224-px input, as `cumpair.embed.efficientnet.DECODE_MIN_SIDE` keeps the whole photo.
_DECODE_MIN_SIDE = math.ceil(2 * 224 / GALLERY_CROP)


def centre_crop(image: Image.Image, share: float = GALLERY_CROP) -> Image.Image:
    """The middle `share` of each side of `image`."""
    width, height = image.size
    crop_w, crop_h = max(1, round(width * share)), max(1, round(height * share))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return image.crop((left, top, left + crop_w, top + crop_h))


def prepare_gallery_image(encoder: ImageEncoder, image: ImageInput) -> np.ndarray:
    """The encoder's prepared pixels of the photo and of its close-up, stacked on a new first
    axis (`VIEWS_PER_PHOTO` rows for `embed_prepared`); raises `ImageError` if the photo is
    bad, or the encoder's `ValueError`."""
    picture = load_image(image, min_side=_DECODE_MIN_SIDE)
    return np.stack([encoder.prepare_image(picture), encoder.prepare_image(centre_crop(picture))])


def embed_gallery_prepared(encoder: ImageEncoder, prepared: Sequence[np.ndarray]) -> np.ndarray:
    """(n, `VIEWS_PER_PHOTO`, dim) unit vectors of `prepare_gallery_image` outputs, one model
    call for all."""
    if not prepared:
        return np.zeros((0, VIEWS_PER_PHOTO, encoder.dim), dtype=np.float32)
    vectors = encoder.embed_prepared(np.concatenate(prepared))
    return vectors.reshape(len(prepared), VIEWS_PER_PHOTO, -1)


def gallery_vectors(encoder: ImageEncoder, images: Sequence[ImageInput]) -> np.ndarray:
    """(n, `VIEWS_PER_PHOTO`, dim): each photo's vector, then its close-up's; the first bad
    photo raises `ImageError`."""
    return embed_gallery_prepared(encoder, [prepare_gallery_image(encoder, i) for i in images])


def indexed_rows(vectors: np.ndarray) -> np.ndarray:
    """The image-space rows of one offer from its photos' (photos, `VIEWS_PER_PHOTO`, dim)
    `gallery_vectors`: every photo's own vector first (ordinal 0 is the main photo), then
    their close-ups in the same order."""
    return np.ascontiguousarray(np.swapaxes(vectors, 0, 1).reshape(-1, vectors.shape[-1]))
