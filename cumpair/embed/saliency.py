"""Where the product is in a query photo, read off the encoder's own last feature map.

A shopper's photo may show the product small on a textured floor or table; the whole photo's
vector is then mostly the floor's. The network's last feature map (10 x 10 cells for a 320-px
input) says where its activations are strongest: summed over channels, the cells of an object
stand out from the cells of a uniform texture (the spatial weighting of CroW, Kalantidis et al.
2016). `salient_box` crops the connected group of strong cells around the strongest one, so a
second forward pass sees the product large. No extra model: the map comes with the photo's own
forward pass. Fails safe: a flat map or a box covering nearly the whole photo gives None (the
photo alone is embedded). Level and margin were chosen on half of the real photos
(bench/eval_retrieval.py --split in) and checked on the other half.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Cells whose activation is at least this share of the way from the map's weakest to its
#: strongest cell are part of the object. 0.6 was chosen on the 7 x 7 map of a 224-px input; on
#: the 10 x 10 map of 320 px (`cumpair.embed.efficientnet.IMAGE_SIZE`) fewer cells of a small
#: product reach it, and the box cut part of it away (real photos, --split in, seed 7, a
#: product small on a texture: the salient view's first hit right for 27 of 37 at 0.6, 34 at
#: 0.5, with the margin below).
SALIENT_LEVEL = 0.5
#: Margin added around the strong cells on each side, as a share of the photo's side: a
#: quarter of a cell of the 7 x 7 map it was chosen on (as cells, it shrank with a finer map).
SALIENT_MARGIN = 0.25 / 7
#: A box covering more than this share of the photo is the photo itself: no crop.
MAX_BOX_SHARE = 0.8
#: Relative spread (max - min over max) below which the map shows no object at all.
MIN_CONTRAST = 0.05


def salient_box(
    activation: np.ndarray,
    size: tuple[int, int],
    *,
    level: float = SALIENT_LEVEL,
    margin: float = SALIENT_MARGIN,
) -> tuple[int, int, int, int] | None:
    """The (left, top, right, bottom) pixel box of a `size` (width, height) photo around the
    4-connected cells of `activation` (rows x cols, the channel-summed last feature map of the
    whole photo) that reach `level` and hold the strongest cell, with `margin` (a share of the
    side) around them; None when the map is flat or the box would cover more than
    `MAX_BOX_SHARE` of the photo."""
    activation = np.asarray(activation, dtype=np.float32)
    if activation.ndim != 2 or not np.isfinite(activation).all():
        raise ValueError(f"expected a finite 2-d activation map, got shape {activation.shape}")
    low, high = float(activation.min()), float(activation.max())
    if high <= 0 or (high - low) / high < MIN_CONTRAST:
        return None
    strong = (activation >= low + level * (high - low)).astype(np.uint8)
    _, labels = cv2.connectedComponents(strong, connectivity=4)
    peak = np.unravel_index(int(np.argmax(activation)), activation.shape)
    rows, cols = np.nonzero(labels == labels[peak])
    grid_h, grid_w = activation.shape
    width, height = size
    left = max(0.0, cols.min() / grid_w - margin)
    right = min(1.0, (cols.max() + 1) / grid_w + margin)
    top = max(0.0, rows.min() / grid_h - margin)
    bottom = min(1.0, (rows.max() + 1) / grid_h + margin)
    if (right - left) * (bottom - top) > MAX_BOX_SHARE:
        return None
    box = (int(left * width), int(top * height), round(right * width), round(bottom * height))
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return None
    return box
