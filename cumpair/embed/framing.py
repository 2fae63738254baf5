"""Find the product in a photo and re-frame it alone on a neutral backdrop: a query-side view.

A shopper's photo may show the product small on a plain table; a view of the object alone then
matches the shop's photo better than the whole shot. `cumpair.embed.query` adds this view to a
photo query on request (`framed=True`), and only when an object is found with confidence. It is
not on by default, and indexed photos are embedded whole: on real photographs framing the indexed
photos lowered recall, and the framed query view did not change it (bench/eval_retrieval.py).

1. *Backdrop*: pixels joined to the image border by smooth paths (low colour gradient) are
   background. This handles flat, gradient, noisy and lightly textured backdrops and the blank
   corners a rotation leaves, without assuming any colour.
2. *Picture in a cluttered scene*: a large smooth region that encloses something (a table top,
   a sheet of paper, a photo held in front of a busy scene) is the product's local backdrop;
   the largest such region wins and the search continues inside its bounding box. A region
   smaller than `MIN_ENCLOSING` of the photo is not trusted (a smooth corner of a real photo
   would crop a tiny wrong region).
3. The object (what is not backdrop; holes filled, thin edge slivers dropped) is matted onto
   neutral grey, its brightness stretched to a fixed range, and cropped square with a margin.

Masks are computed on a small thumbnail; only the final square is rendered from the photo's
pixels, at the size the caller asks for, so the cost hardly grows with the photo's resolution.
Fails safe: never raises on odd images, and returns None when no object is found (a real floor,
wall or scene with no smooth backdrop), so the caller embeds the whole photo instead of a guess.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

#: Long side of the thumbnail the masks are computed on.
WORK_SIZE = 160
#: Colour step per pixel (after smoothing) above which a pixel is an edge, not backdrop.
FLAT_GRADIENT = 5.0
#: Grey the object is placed on, and the share of the object's size added around it.
FILL = (128, 128, 128)
MARGIN = 0.06
#: A smooth region must cover this share of the frame to count as a local backdrop.
MIN_BACKDROP = 0.03
#: An object mask covering more of the frame than this is not trusted (no backdrop seen).
MAX_COVER = 0.75
#: A local backdrop's bounding box must cover this share of the photo to be searched inside.
MIN_ENCLOSING = 0.1

# Smoothing before the gradient: sigma 1.2, kernel radius 5 (scipy's default truncation).
_SMOOTH_SIGMA = 1.2
_SMOOTH_KSIZE = 11
# The gradient was first defined with scipy.ndimage.sobel on the (h, w, 3) thumbnail, which
# also smooths across the colour axis with [1, 2, 1] (mirrored at the ends); the cv2 filters
# below reproduce it exactly with this channel mix, so the masks did not change.
_CHANNEL_MIX = np.array([[3, 1, 0], [1, 2, 1], [0, 1, 3]], dtype=np.float32)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def framed_product(image: Image.Image, size: int | None = None) -> Image.Image | None:
    """The product alone, cut from its backdrop (or from a cluttered scene), square, on grey;
    None when no object is found with confidence (the caller should use the whole photo).

    Without `size` the view keeps the photo's resolution; with it, it is rendered directly as
    a `size` x `size` square.
    """
    if size is not None and size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    plan = _plan(pixels)
    if plan is None:
        return None
    return Image.fromarray(_render(pixels, plan, size or round(plan.square[2])))


@dataclass(frozen=True)
class _Plan:
    """Where the product is: `square` (left, top, side, in pixels of `region`, the part of the
    photo the masks were computed in; it may overhang it) and the object's matte over
    `region` at mask resolution."""

    region: tuple[int, int, int, int]
    square: tuple[float, float, float]
    alpha: np.ndarray


def _plan(pixels: np.ndarray) -> _Plan | None:
    """Where the object is, or None when no object is found."""
    height, width = pixels.shape[:2]
    thumb = _thumbnail(pixels)
    labels, count = _flat_regions(thumb)
    region = _enclosing_backdrop(labels, count, (width, height))
    if region is not None and region != (0, 0, width, height):
        x0, y0, x1, y1 = region
        thumb = _thumbnail(pixels[y0:y1, x0:x1])
        labels, count = _flat_regions(thumb)
    else:
        region = (0, 0, width, height)  # the usual shop photo: its backdrop spans the frame
    width, height = region[2] - region[0], region[3] - region[1]
    mask = _object_mask(labels, count)
    if mask is None:
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    scale_x = width / mask.shape[1]
    scale_y = height / mask.shape[0]
    x0, x1 = cols[0] * scale_x, (cols[-1] + 1) * scale_x
    y0, y1 = rows[0] * scale_y, (rows[-1] + 1) * scale_y
    side = max(x1 - x0, y1 - y0) * (1 + 2 * MARGIN)
    square = (round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2), max(1, round(side)))
    alpha = cv2.GaussianBlur(
        mask.astype(np.float32), (7, 7), 0.7, borderType=cv2.BORDER_REFLECT
    )  # sigma 0.7, radius 3: scipy's gaussian_filter defaults, which it replaced
    return _Plan(region, square, alpha)


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    """Area-averaged copy with a long side of at most WORK_SIZE, float32."""
    height, width = pixels.shape[:2]
    scale = min(1.0, WORK_SIZE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != (width, height):
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return pixels.astype(np.float32)


def _flat_regions(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected smooth regions: labels and their count (0 = edge pixels)."""
    smooth = cv2.GaussianBlur(
        pixels,
        (_SMOOTH_KSIZE, _SMOOTH_KSIZE),
        _SMOOTH_SIGMA,
        borderType=cv2.BORDER_REFLECT,
    )
    smooth = cv2.transform(smooth, _CHANNEL_MIX.T)  # smooth @ _CHANNEL_MIX, 2x faster
    along_y = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    along_x = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    squared = along_y * along_y + along_x * along_x
    # The max over channels keeps colour edges (written out: numpy reduces a length-3 axis
    # slowly). A Sobel response is 8x the per-pixel step (and the channel mix another 4x, see
    # above: the threshold was tuned with it).
    peak = np.maximum(np.maximum(squared[..., 0], squared[..., 1]), squared[..., 2])
    return _label(peak < (8.0 * FLAT_GRADIENT) ** 2)


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected regions of a boolean mask numbered 1.. in raster order of their first
    pixel, and their count: `ndimage.label`'s result, from OpenCV's faster labelling."""
    count, labels = cv2.connectedComponents(
        np.ascontiguousarray(mask).view(np.uint8), connectivity=4, ltype=cv2.CV_32S
    )
    return labels, count - 1


def _box_of(labels: np.ndarray, label: int) -> tuple[int, int, int, int, np.ndarray]:
    """Bounding box (left, top, width, height) of one region and its mask inside the box (per
    region, cheaper than `ndimage.find_objects` over every small region of a noisy photo)."""
    region = labels == label
    left, top, width, height = cv2.boundingRect(region.view(np.uint8))
    return left, top, width, height, region[top : top + height, left : left + width]


def _border_labels(labels: np.ndarray) -> np.ndarray:
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    found = np.unique(edge)
    return found[found > 0]


def _touching_border(labels: np.ndarray, count: int) -> np.ndarray:
    """Pixels whose region reaches the frame (a table lookup: cheaper than `np.isin`)."""
    touches = np.zeros(count + 1, dtype=bool)
    touches[_border_labels(labels)] = True
    return np.take(touches, labels)  # fancy indexing takes ~1.7x as long


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` plus every background pocket not 4-connected to the frame (what
    `ndimage.binary_fill_holes` computes, by labelling instead of repeated dilation)."""
    outside, count = _label(~mask)
    return ~_touching_border(outside, count)


def _opening(mask: np.ndarray, iterations: int) -> np.ndarray:
    """`ndimage.binary_opening(mask, iterations=...)` (cross element, nothing outside the
    frame) in OpenCV, which is several times faster on these small masks."""
    pixels = mask.view(np.uint8)
    eroded = cv2.erode(pixels, _CROSS, iterations=iterations, borderType=cv2.BORDER_CONSTANT,
                       borderValue=0)  # fmt: skip
    opened = cv2.dilate(eroded, _CROSS, iterations=iterations, borderType=cv2.BORDER_CONSTANT,
                        borderValue=0)  # fmt: skip
    return opened.view(bool)


def _enclosing_backdrop(
    labels: np.ndarray, count: int, image_size: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Bounding box (photo pixels) of the largest smooth region that encloses an object."""
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    best: tuple[float, tuple[int, int, int, int]] | None = None
    for label in np.flatnonzero(sizes >= MIN_BACKDROP * labels.size) + 1:
        left, top, width, height, region = _box_of(labels, label)
        if width * height < MIN_ENCLOSING * labels.size:
            continue
        filled = _fill_holes(region)
        area = float(filled.sum())
        # Something must sit inside the region, and region + contents must be compact (a
        # backdrop), not a winding strip of sky between other things.
        if area - region.sum() < 0.1 * area or area < 0.6 * filled.size:
            continue
        if best is None or area > best[0]:
            best = (area, (left, top, left + width, top + height))
    if best is None:
        return None
    scale_x = image_size[0] / labels.shape[1]
    scale_y = image_size[1] / labels.shape[0]
    x0, y0, x1, y1 = best[1]
    return (
        round(x0 * scale_x),
        round(y0 * scale_y),
        round(x1 * scale_x),
        round(y1 * scale_y),
    )


def _object_mask(labels: np.ndarray, count: int) -> np.ndarray | None:
    """Thumbnail mask of the object: not backdrop, holes filled, edge slivers dropped."""
    mask = _fill_holes(~_touching_border(labels, count))
    # Keep parts with some body; this drops the thin lines between two backdrop regions
    # (e.g. where a rotated photo meets the blank corner the rotation added).
    thick = _opening(mask, 3)
    parts, count = _label(mask)
    if thick.any():
        # Dropping whole parts keeps the others' labels valid.
        kept = np.zeros(count + 1, dtype=bool)
        kept[parts[thick]] = True
        kept[0] = False
        parts *= np.take(kept, parts)
    for label in _border_labels(parts):
        left, top, width, height, part = _box_of(parts, label)
        if part.sum() < 0.3 * part.size:  # a sliver along the frame, not an object
            parts[top : top + height, left : left + width][part] = 0
    mask = parts > 0
    # An "object" filling most of the frame means no backdrop was found (a scene, a close-up):
    # leave such photos as they are rather than cut them differently at each crop.
    covered = mask.mean()
    if covered < 0.01 or covered > MAX_COVER:
        return None
    sizes = np.bincount(parts.ravel(), minlength=count + 1)
    sizes[0] = 0
    keep = sizes >= max(0.05 * sizes.max(), 0.002 * mask.size)
    keep[0] = False
    if not keep.any():  # only specks (a textured backdrop with nothing on it): no object
        return None
    return np.take(keep, parts)


def _render(pixels: np.ndarray, plan: _Plan, out: int) -> np.ndarray:
    """The plan's square of the photo as `out` x `out` RGB pixels.

    One affine warp samples the square straight from the photo (the overhang comes out grey);
    a square more than twice the output size is first averaged down by a whole factor, so
    the warp never skips pixels (aliasing). The object is brightness-stretched and blended onto
    grey through its matte.
    """
    left, top, side = plan.square
    step = side / out  # photo pixels per output pixel
    # Output pixel centre j maps to photo coordinate origin + (j + 0.5) * step - 0.5.
    origin_x, origin_y = plan.region[0] + left, plan.region[1] + top
    source, reduce, shift_x, shift_y = pixels, 1, 0.0, 0.0
    if step >= 2:
        reduce = int(step)
        x0, y0 = max(0, math.floor(origin_x)), max(0, math.floor(origin_y))
        x1 = min(pixels.shape[1], math.ceil(origin_x + side))
        y1 = min(pixels.shape[0], math.ceil(origin_y + side))
        width, height = (x1 - x0) // reduce * reduce, (y1 - y0) // reduce * reduce
        if width and height:
            block = pixels[y0 : y0 + height, x0 : x0 + width]
            source = cv2.resize(
                block, (width // reduce, height // reduce), interpolation=cv2.INTER_AREA
            )
            # Photo x lands on (x - x0 + 0.5) / reduce - 0.5 in the averaged copy.
            shift_x, shift_y = -x0 + 0.5 - 0.5 * reduce, -y0 + 0.5 - 0.5 * reduce
        else:
            reduce = 1
    to_source = np.array(
        [
            [step / reduce, 0, (origin_x + 0.5 * step - 0.5 + shift_x) / reduce],
            [0, step / reduce, (origin_y + 0.5 * step - 0.5 + shift_y) / reduce],
        ]
    )
    framed = cv2.warpAffine(
        source,
        to_source,
        (out, out),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=FILL,
    )
    # The matte covers the region at mask resolution, mapped by pixel centres like the photo.
    width, height = plan.region[2] - plan.region[0], plan.region[3] - plan.region[1]
    scale_x, scale_y = plan.alpha.shape[1] / width, plan.alpha.shape[0] / height
    to_matte = np.array(
        [
            [scale_x * step, 0, scale_x * (left + 0.5 * step) - 0.5],
            [0, scale_y * step, scale_y * (top + 0.5 * step) - 0.5],
        ]
    )
    matte = cv2.warpAffine(
        plan.alpha,
        to_matte,
        (out, out),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    # Outside the region (a photo held in a scene, framed with some of the scene) is grey.
    first_x, first_y = math.ceil(-left / step - 0.5), math.ceil(-top / step - 0.5)
    end_x, end_y = math.ceil((width - left) / step - 0.5), math.ceil((height - top) / step - 0.5)
    matte[: max(0, first_y)] = 0
    matte[max(0, end_y) :] = 0
    matte[:, : max(0, first_x)] = 0
    matte[:, max(0, end_x) :] = 0
    np.clip(matte, 0, 1, out=matte)
    grey = _grey(out, FILL)
    return cv2.blendLinear(_stretch(framed, matte > 0.5), grey, matte, 1 - matte)


@functools.lru_cache(maxsize=8)
def _grey(size: int, fill: tuple[int, ...]) -> np.ndarray:
    """A read-only square of `fill` (filling a fresh one per photo cost ~0.2 ms: NumPy
    broadcasts a short tuple into an array slowly)."""
    grey = np.empty((size, size, len(fill)), dtype=np.uint8)
    grey[:] = fill
    grey.flags.writeable = False
    return grey


def _stretch(pixels: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Map the object's 2nd-98th brightness percentiles to a fixed range (undoes exposure)."""
    # Brightness x 3, an integer 0..765: its histogram gives exact percentiles without a sort.
    totals = np.add(pixels[..., 0], pixels[..., 1], dtype=np.uint16)
    totals += pixels[..., 2]
    totals = totals[inside]
    if len(totals) < 50:
        return pixels
    low, high = _percentiles(np.bincount(totals, minlength=766), (2, 98)) / 3
    if high - low <= 20:  # a flat object: stretching would only amplify noise
        return pixels
    gain = 235.0 / (high - low)
    # One lookup table for the 256 values instead of float arithmetic over every pixel.
    table = np.clip((np.arange(256, dtype=np.float32) - low) * gain + 10, 0, 255)
    return cv2.LUT(np.ascontiguousarray(pixels), table.astype(np.uint8))


def _percentiles(histogram: np.ndarray, shares: tuple[float, ...]) -> np.ndarray:
    """`np.percentile` (linear method) of the values that `histogram` counts."""
    ends = np.cumsum(histogram)  # ends[v]: how many values are <= v
    ranks = np.array(shares, dtype=np.float64) / 100 * (ends[-1] - 1)
    below = np.floor(ranks)
    lower = np.searchsorted(ends, below, side="right")  # value of the floor(rank)-th smallest
    upper = np.searchsorted(ends, below + 1, side="right")
    upper = np.where(below + 1 < ends[-1], upper, lower)
    return lower + (ranks - below) * (upper - lower)
