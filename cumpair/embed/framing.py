"""Find the product in a photo and re-frame it alone on a neutral backdrop before embedding.

Shop photos of one product differ mostly in their backdrop (gradients, noise, cloth, a room),
and a CNN's pooled features are dominated by that backdrop: photos from one shop look alike
whatever they show. So both the indexed photo and the query photo are reduced to the object:

1. *Backdrop*: pixels joined to the image border by smooth paths (low colour gradient) are
   background. This handles flat, gradient, noisy and lightly textured backdrops and the blank
   corners a rotation leaves, without assuming any colour.
2. *Picture in a cluttered scene*: a large smooth region that encloses something (a table top,
   a sheet of paper, a photo held in front of a busy scene) is the product's local backdrop;
   the largest such region wins and the search continues inside its bounding box.
3. The object (what is not backdrop; holes filled, thin edge slivers dropped) is matted onto
   neutral grey, its brightness stretched to a fixed range, and cropped square with a margin.

Pure NumPy/SciPy on a small thumbnail (~2 ms per photo); never raises on odd images: when no
object is found the photo is returned unchanged.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

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


def product_view(image: Image.Image) -> Image.Image:
    """The product alone: cut from its backdrop (or from a cluttered scene), square, on grey."""
    image = image.convert("RGB")
    box = _enclosing_backdrop(image)
    if box is not None:
        image = image.crop(box)
    return _matte_square(image)


def _thumbnail(image: Image.Image) -> np.ndarray:
    small = image.copy()
    small.thumbnail((WORK_SIZE, WORK_SIZE))
    return np.asarray(small, dtype=np.float32)


def _flat_regions(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected smooth regions: labels and their count (0 = edge pixels)."""
    smooth = ndimage.gaussian_filter(pixels, (1.2, 1.2, 0))
    # A Sobel response is 8x the per-pixel step; the max over channels keeps colour edges.
    step = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1)).max(-1) / 8.0
    return ndimage.label(step < FLAT_GRADIENT)


def _border_labels(labels: np.ndarray) -> np.ndarray:
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    found = np.unique(edge)
    return found[found > 0]


def _enclosing_backdrop(image: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box of the largest smooth region that encloses an object, if any."""
    pixels = _thumbnail(image)
    labels, count = _flat_regions(pixels)
    if count == 0:
        return None
    sizes = ndimage.sum_labels(labels > 0, labels, np.arange(1, count + 1))
    best: tuple[float, tuple[int, int, int, int]] | None = None
    slices = ndimage.find_objects(labels)
    for label in np.flatnonzero(sizes >= MIN_BACKDROP * labels.size) + 1:
        window = slices[label - 1]
        region = labels[window] == label
        filled = ndimage.binary_fill_holes(region)
        area = float(filled.sum())
        # Something must sit inside the region, and region + contents must be compact (a
        # backdrop), not a winding strip of sky between other things.
        if area - region.sum() < 0.1 * area or area < 0.6 * filled.size:
            continue
        if best is None or area > best[0]:
            rows, cols = window
            best = (area, (cols.start, rows.start, cols.stop, rows.stop))
    if best is None:
        return None
    scale_x = image.width / pixels.shape[1]
    scale_y = image.height / pixels.shape[0]
    x0, y0, x1, y1 = best[1]
    return (
        round(x0 * scale_x),
        round(y0 * scale_y),
        round(x1 * scale_x),
        round(y1 * scale_y),
    )


def _object_mask(pixels: np.ndarray) -> np.ndarray | None:
    """Thumbnail mask of the object: not backdrop, holes filled, edge slivers dropped."""
    labels, _ = _flat_regions(pixels)
    mask = ~np.isin(labels, _border_labels(labels))
    mask = ndimage.binary_fill_holes(mask)
    # Keep parts with some body; this drops the thin lines between two backdrop regions
    # (e.g. where a rotated photo meets the blank corner the rotation added).
    thick = ndimage.binary_opening(mask, iterations=3)
    parts, _ = ndimage.label(mask)
    if thick.any():
        mask = np.isin(parts, np.unique(parts[thick]))
        parts, _ = ndimage.label(mask)
    border = set(_border_labels(parts).tolist())
    for label, window in enumerate(ndimage.find_objects(parts), 1):
        if window is not None and label in border:
            part = parts[window] == label
            if part.sum() < 0.3 * part.size:  # a sliver along the frame, not an object
                mask[window][part] = False
    # An "object" filling most of the frame means no backdrop was found (a scene, a close-up):
    # leave such photos as they are rather than cut them differently at each crop.
    covered = mask.mean()
    if covered < 0.01 or covered > MAX_COVER:
        return None
    parts, count = ndimage.label(mask)
    sizes = ndimage.sum_labels(mask, parts, np.arange(1, count + 1))
    keep = np.flatnonzero(sizes >= max(0.05 * sizes.max(), 0.002 * mask.size)) + 1
    if not len(keep):  # only specks (a textured backdrop with nothing on it): no object
        return None
    return np.isin(parts, keep)


def _matte_square(image: Image.Image) -> Image.Image:
    pixels = _thumbnail(image)
    mask = _object_mask(pixels)
    if mask is None:
        return image
    alpha = ndimage.gaussian_filter(mask.astype(np.float32), 0.7)
    alpha_image = Image.fromarray((np.clip(alpha, 0, 1) * 255).astype(np.uint8))
    alpha_image = alpha_image.resize(image.size, Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", image.size, FILL)
    canvas.paste(_stretch(image, np.asarray(alpha_image) > 127), (0, 0), alpha_image)
    rows, cols = np.nonzero(mask)
    scale_x = image.width / mask.shape[1]
    scale_y = image.height / mask.shape[0]
    x0, x1 = cols.min() * scale_x, (cols.max() + 1) * scale_x
    y0, y1 = rows.min() * scale_y, (rows.max() + 1) * scale_y
    side = max(x1 - x0, y1 - y0) * (1 + 2 * MARGIN)
    left = round((x0 + x1 - side) / 2)
    top = round((y0 + y1 - side) / 2)
    framed = Image.new("RGB", (max(1, round(side)),) * 2, FILL)
    framed.paste(canvas, (-left, -top))
    return framed


def _stretch(image: Image.Image, inside: np.ndarray) -> Image.Image:
    """Map the object's 2nd-98th brightness percentiles to a fixed range (undoes exposure)."""
    pixels = np.asarray(image, dtype=np.float32)
    values = pixels[inside]
    if len(values) < 50:
        return image
    low, high = np.percentile(values.mean(axis=1), [2, 98])
    if high - low <= 20:  # a flat object: stretching would only amplify noise
        return image
    stretched = np.clip((pixels - low) * (235.0 / (high - low)) + 10, 0, 255)
    return Image.fromarray(stretched.astype(np.uint8))
